// The IOCP socket back-end (iocp_backend.cpp): factory, and the Windows error -> portable status table.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "backend.h"

namespace cpspec {

// The Windows socket back-end over the kernel completion port (port_iocp.cpp). Calls WSAStartup once per
// process. nullptr (and why) when Winsock or its extension functions (AcceptEx, ConnectEx) are unavailable.
std::unique_ptr<Backend> make_iocp_backend(std::string& why);

// One line for info().notes: which optional Windows mechanisms the back-end uses here (skip-on-success).
std::string iocp_backend_note();

namespace iocp {

// ---------------------------------------------------------------------------------------------------------
// Win32 / Winsock error -> portable status. The code itself always travels beside the status
// (Packet::native_error, Sync::native_error). `cancelled`: the back-end itself cancelled the operation
// (cancel(), close(), shutdown_all(), CancelIoEx): then ANY failure is `aborted`, because Windows reports our
// own cancellation inconsistently (ERROR_OPERATION_ABORTED documented, ERROR_CONNECTION_ABORTED on modern
// Windows, ERROR_NETNAME_DELETED on XP; Wine 8.0: ERROR_HANDLES_CLOSED, ERROR_INVALID_HANDLE).
//
//   ERROR_NETNAME_DELETED (64), WSAECONNRESET (10054), WSAENETRESET (10052),
//   WSAESHUTDOWN (10058: send after shutdown(SD_SEND), Linux's EPIPE), WSAENOTCONN (10057),
//   WSAEHOSTUNREACH (10065), ERROR_HOST_UNREACHABLE (1232), WSAENETUNREACH (10051),
//   ERROR_NETWORK_UNREACHABLE (1231), WSAENETDOWN (10050), WSAEHOSTDOWN (10064)    -> reset
//   ERROR_CONNECTION_ABORTED (1236), WSAECONNABORTED (10053)                         -> reset (a remote or
//                                                       stack abort); aborted when `cancelled` (our own)
//   ERROR_OPERATION_ABORTED (995 = WSA_OPERATION_ABORTED), ERROR_HANDLES_CLOSED (676) -> aborted
//   ERROR_CONNECTION_REFUSED (1225), WSAECONNREFUSED (10061)                         -> refused
//   WSAETIMEDOUT (10060), ERROR_SEM_TIMEOUT (121)                                    -> timeout
//   WSAENOBUFS (10055)                                                               -> pool_exhausted
//   anything else (WSAENOTSOCK, WSAEINVAL, ERROR_INVALID_HANDLE, ...)                -> invalid
// ---------------------------------------------------------------------------------------------------------
Status status_from_win32(std::uint32_t e, bool cancelled) noexcept;
// Errors after which the stream is dead for good: later receives and sends complete at once with the same
// status and code (Wine 8.0 itself reports a 0-byte success for the receive after a reset).
bool is_sticky_win32(std::uint32_t e) noexcept;

}  // namespace iocp
}  // namespace cpspec
