# cmake --install: the split headers (#include <mesh/mesh.hpp>), the single header
# (#include <mesh.hpp>), the mesh::mesh and mesh::tls targets for find_package(mesh),
# and mesh.pc / mesh-tls.pc for pkg-config. The build tree is exported as well, so
# find_package(mesh) also works against a build directory.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(MESH_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/mesh")
set(mesh_exported meshhpp_mesh)
set_target_properties(meshhpp_mesh PROPERTIES EXPORT_NAME mesh)
target_include_directories(meshhpp_mesh INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
set(MESH_PACKAGE_HAS_TLS OFF)
if(TARGET meshhpp_mesh_tls)
  set(MESH_PACKAGE_HAS_TLS ON)
  set_target_properties(meshhpp_mesh_tls PROPERTIES EXPORT_NAME tls)
  list(APPEND mesh_exported meshhpp_mesh_tls)
endif()

install(TARGETS ${mesh_exported} EXPORT meshTargets)
install(DIRECTORY include/mesh DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES mesh.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT meshTargets NAMESPACE mesh:: DESTINATION ${MESH_INSTALL_CMAKEDIR})
export(EXPORT meshTargets NAMESPACE mesh:: FILE "${CMAKE_CURRENT_BINARY_DIR}/meshTargets.cmake")

configure_package_config_file(cmake/meshConfig.cmake.in "${CMAKE_CURRENT_BINARY_DIR}/meshConfig.cmake"
                              INSTALL_DESTINATION ${MESH_INSTALL_CMAKEDIR})
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/meshConfigVersion.cmake"
                                 COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
# The package finds Asio the way this project does.
configure_file(cmake/MeshAsio.cmake "${CMAKE_CURRENT_BINARY_DIR}/MeshAsio.cmake" COPYONLY)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/meshConfig.cmake" "${CMAKE_CURRENT_BINARY_DIR}/meshConfigVersion.cmake"
              cmake/MeshAsio.cmake
        DESTINATION ${MESH_INSTALL_CMAKEDIR})

configure_file(cmake/mesh.pc.in "${CMAKE_CURRENT_BINARY_DIR}/mesh.pc" @ONLY)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/mesh.pc" DESTINATION ${CMAKE_INSTALL_DATADIR}/pkgconfig)
if(MESH_PACKAGE_HAS_TLS)
  configure_file(cmake/mesh-tls.pc.in "${CMAKE_CURRENT_BINARY_DIR}/mesh-tls.pc" @ONLY)
  install(FILES "${CMAKE_CURRENT_BINARY_DIR}/mesh-tls.pc" DESTINATION ${CMAKE_INSTALL_DATADIR}/pkgconfig)
endif()
