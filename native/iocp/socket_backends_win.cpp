// Windows builds of the addon (root CMakeLists.txt under WIN32): the Linux socket back-ends are not
// compiled there, so their factories say why they are unavailable (backend.h: nullptr plus the reason).
// The IOCP socket back-end (AcceptEx/ConnectEx/WSARecv/WSASend on the kernel port) will live beside
// port_iocp.cpp.
#ifdef _WIN32
#include "backend.h"

namespace cpspec {

std::unique_ptr<Backend> make_epoll_backend(std::string& why) {
  why = "epoll is Linux-only (this is the Windows build)";
  return nullptr;
}

std::unique_ptr<Backend> make_uring_backend(std::string& why) {
  why = "io_uring is Linux-only (this is the Windows build)";
  return nullptr;
}

}  // namespace cpspec
#endif
