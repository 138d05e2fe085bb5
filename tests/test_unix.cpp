#include <mesh/mesh.hpp>
#include <doctest/doctest.h>
