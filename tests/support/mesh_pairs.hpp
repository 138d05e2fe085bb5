#pragma once

// Two meshes joined by one connection: `a` knows it as "b", `b` as "a".

#include <mesh/mesh.hpp>

#include "support/tcp_peers.hpp"
#include "support/wait.hpp"

#include <string>
#include <utility>

namespace mesh_test {

template <class Config = mesh::DefaultConfig>
struct InprocMeshes {
    mesh::Mesh<mesh::Inproc, Config> a, b;
    explicit InprocMeshes(const std::string& name = "mesh-pair") {
        mesh::Inproc transport;
        auto pair = connected_pair(transport, name);
        a.add(std::move(pair.client), "b");
        b.add(std::move(pair.server), "a");
    }
};

template <class Config = mesh::DefaultConfig>
struct TcpMeshes {
    mesh::Mesh<mesh::Tcp, Config> a, b;
    TcpMeshes() {
        mesh::Tcp tcp;
        auto pair = tcp_pair(tcp);
        a.add(std::move(pair.client), "b");
        b.add(std::move(pair.server), "a");
    }
};

} // namespace mesh_test
