// Helpers shared by the socket back-ends (native/epoll, native/uring): the errno -> status table, operation
// ids and the process-wide back-end registry (so packet conversion can find the back-end that owns an op),
// the per-op state machine, send-all bookkeeping and fault-injection counters, and (POSIX) the address
// parser both use. No OS calls here beyond inet_pton.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"

#if !defined(_WIN32)
#include <sys/socket.h>
#endif

namespace cpspec::sockets {

// ---------------------------------------------------------------------------------------------------------
// errno -> portable status. The errno always travels beside the status (Packet::native_error).
//
//   ECONNRESET, EPIPE, ECONNABORTED, ENOTCONN, ENETRESET, EHOSTUNREACH,
//   ENETUNREACH, ENETDOWN, EHOSTDOWN, EPROTO                              -> reset   (connection errors)
//   ECONNREFUSED                                                          -> refused
//   ECANCELED                                                             -> aborted
//   ETIMEDOUT                                                             -> timeout
//   ENOBUFS                                                               -> pool_exhausted
//   EBADF, ENOTSOCK, EINVAL, anything else                                -> invalid
// ---------------------------------------------------------------------------------------------------------
Status status_from_errno(int e) noexcept;
// Errors after which the stream is dead for good: later receives and sends fail at once with the same
// status (the kernel itself reports ECONNRESET only once, then 0 = "eof", which would hide the reset).
bool is_sticky_error(int e) noexcept;

// ---------------------------------------------------------------------------------------------------------
// Operation ids: the back-end's registry index in the high bits, a per-back-end sequence number below.
// Both stay below 2^53 so ids are exact JS numbers.
// ---------------------------------------------------------------------------------------------------------
inline constexpr int kOpIndexShift = 40;
inline constexpr std::uint64_t kOpSeqMask = (std::uint64_t{1} << kOpIndexShift) - 1;
inline constexpr std::uint32_t kMaxBackends = (1u << 13) - 1;
inline constexpr OpId make_op_id(std::uint32_t index, std::uint64_t seq) noexcept {
  return (static_cast<std::uint64_t>(index) << kOpIndexShift) | (seq & kOpSeqMask);
}
inline constexpr std::uint32_t op_backend_index(OpId op) noexcept {
  return static_cast<std::uint32_t>(op >> kOpIndexShift);
}

// The registry: a back-end registers itself when built (gets its index, 1..kMaxBackends; 0 = the table is
// full, ops then carry index 0 and take_op_data cannot find them) and unregisters at the start of its
// destructor. Lock order: registry lock, then the back-end's own lock (take_data); a back-end never calls
// the registry while holding its own lock.
std::uint32_t register_backend(Backend* b) noexcept;
void unregister_backend(std::uint32_t index) noexcept;
// Backend::take_data on whichever back-end owns op; false when none does (any more).
bool take_op_data(OpId op, std::vector<std::uint8_t>& out);

// ---------------------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------------------
enum class OpKind : std::uint8_t { accept, connect, recv, probe, send };
// pending -> done, exactly once, under the back-end's lock. complete_once() returns false (and changes
// nothing) when the op was already done: the caller must then post nothing.
enum class OpState : std::uint8_t { pending, done };

struct Op {
  OpId id = 0;
  OpKind kind = OpKind::recv;
  OpState state = OpState::pending;
  std::uint64_t token = 0;
  std::uint32_t length = 0;     // recv: buffer size
  std::uint64_t new_key = 0;    // accept: the new socket's key
  // send: a copy of the caller's bytes and how many the kernel took so far (never more than data.size()).
  std::vector<std::uint8_t> data;
  std::size_t sent = 0;
  bool partial = false;
  // recv: the pool of a pool-backed receive (recv_pool.h), else null.
  std::shared_ptr<RecvPool> pool;
  bool issued = false;  // a pool-backed receive was attempted once (its "issue": recv_pool.h)

  bool complete_once() noexcept {
    if (state != OpState::pending) return false;
    state = OpState::done;
    return true;
  }
  std::size_t remaining() const noexcept { return data.size() - sent; }
  // Records n bytes accepted by one send call; clamps so a confused kernel/injector never over-reports.
  void account_sent(std::size_t n) noexcept { sent += n > remaining() ? remaining() : n; }
};

// ---------------------------------------------------------------------------------------------------------
// Fault injection, per socket. Counters start at 0 when set_faults is called.
// ---------------------------------------------------------------------------------------------------------
struct FaultState {
  SocketFaults f;
  std::uint32_t send_calls = 0;
  std::uint32_t recv_calls = 0;

  void set(const SocketFaults& nf) noexcept {
    f = nf;
    send_calls = recv_calls = 0;
  }
  // How many bytes one system call may move (n capped by max_bytes_per_call).
  std::size_t cap(std::size_t n) const noexcept {
    return f.max_bytes_per_call != 0 && n > f.max_bytes_per_call ? f.max_bytes_per_call : n;
  }
  // Counts one send/recv system call about to be made; returns the errno to fail it with, or 0.
  int on_call(bool send) noexcept {
    std::uint32_t& c = send ? send_calls : recv_calls;
    ++c;
    const auto want = send ? SocketFaults::Call::send : SocketFaults::Call::recv;
    return f.fail_call == want && f.fail_nth != 0 && c == f.fail_nth ? f.fail_errno : 0;
  }
};

#if !defined(_WIN32)
// "127.0.0.1" / "::1" / "" or "localhost" (= 127.0.0.1) -> a socket address with the port; false for
// anything else (no name resolution). POSIX socket back-ends only (epoll, uring).
bool parse_address(const std::string& host, std::uint16_t port, sockaddr_storage& ss, socklen_t& len);
#endif

// ---------------------------------------------------------------------------------------------------------
// Session limits on listeners (Backend::set_session_limit, CP-POOL-007), kept by the back-end under its
// lock: on the listener the gate, on each socket accepted from a limited listener the listener's id.
// ---------------------------------------------------------------------------------------------------------
struct SessionGate {
  std::uint32_t max = 0;  // 0 = no limit
  std::uint32_t active = 0;
  std::uint64_t refused = 0;
  std::vector<std::uint8_t> message;
  bool full() const noexcept { return max != 0 && active >= max; }
  SessionStats stats() const noexcept { return SessionStats{max, active, refused}; }
};
inline constexpr std::uint32_t kMaxSessionMessage = 4096;
Sync check_session_limit(const std::vector<std::uint8_t>& message);

#if !defined(_WIN32)
// Refuses an accepted connection the documented way: writes `message` (best effort, without blocking),
// shuts the sending side down (the peer reads the message, then end of stream) and closes fd.
void refuse_connection(int fd, const std::vector<std::uint8_t>& message) noexcept;
#endif

// Sync helpers.
inline Sync sync_ok() { return Sync{}; }
Sync sync_error(Status s, int native_error, std::string message);
Sync sync_errno(int e, const std::string& what);  // status_from_errno(e), message "what: strerror"
inline Sync sync_unknown_socket(SocketId s) { return sync_error(Status::invalid, 0, "unknown socket " + std::to_string(s)); }

// Argument checks every back-end's submissions share (ok, or the invalid Sync to return).
Sync check_send_args(const std::uint8_t* data, std::size_t n);
Sync check_faults(const SocketFaults& f);

#if !defined(_WIN32)
// The system-call setup the POSIX back-ends share. nonblocking: epoll wants O_NONBLOCK sockets, io_uring
// blocking ones (it arms its own poll).
// A bound, listening socket on host:bind_port (SO_REUSEADDR); fd and the port actually bound.
Sync open_listener(const std::string& host, std::uint16_t bind_port, int backlog, bool nonblocking, int& fd,
                   std::uint16_t& bound_port);
// A TCP socket (TCP_NODELAY) for connecting to host:remote_port, and that address.
Sync open_stream_for(const std::string& host, std::uint16_t remote_port, bool nonblocking, int& fd,
                     sockaddr_storage& ss, socklen_t& len);
// SO_SNDBUF / SO_RCVBUF where > 0.
Sync set_socket_buffers(int fd, int send_bytes, int recv_bytes);
#endif

}  // namespace cpspec::sockets
