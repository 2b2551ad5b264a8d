// Windows builds (native/iocp/CMakeLists.txt for the driver; the root CMakeLists.txt under WIN32 for the
// addon): the Linux socket back-ends are not compiled there, so their factories say why they are unavailable
// (backend.h: nullptr plus the reason). The Windows socket back-end is make_iocp_backend (iocp_backend.h,
// iocp_backend.cpp: AcceptEx/ConnectEx/WSARecv/WSASend/CancelIoEx on the kernel completion port).
#ifdef _WIN32
#include "backend.h"

namespace cpspec {

std::unique_ptr<Backend> make_epoll_backend(std::string& why) {
  why = "epoll is Linux-only (this is the Windows build: use the iocp back-end)";
  return nullptr;
}

std::unique_ptr<Backend> make_uring_backend(std::string& why) {
  why = "io_uring is Linux-only (this is the Windows build: use the iocp back-end)";
  return nullptr;
}

}  // namespace cpspec
#endif
