// Includes the library and nothing else: compiled with flags the library refuses.
#include <mesh/mesh.hpp>

int main() {}
