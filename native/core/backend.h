// The socket back-end contract: TCP operations whose completions are posted to a cpspec::Port, with the
// same semantics on every back-end (epoll emulation, io_uring, Windows IOCP). See SocketApi in
// reference/src/target.ts for the behaviour each operation must have, and spec/catalogue.ts (EOF, PARTIAL,
// CANCEL, ACCEPT) for the requirements it is held to.
//
// Completion packets: key = the socket's key (for accept: the listener's key), token = the operation's
// token, op = the operation id, status/native_error = the portable status and errno, bytes = bytes
// transferred. Data received by a recv is kept by the back-end until take_data(op) is called (once) after
// the packet was dequeued; for an accept, Packet::socket is the new socket's id.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "port.h"
#include "recv_pool.h"

namespace cpspec {

using SocketId = std::uint64_t;  // 0 is never a valid socket
using OpId = std::uint64_t;      // 0 is never a valid operation

// A synchronous result: ok, or the reason nothing was queued (no packet will ever come for a call that
// fails synchronously). `code` is the portable status name; `native_error` the errno / Win32 code.
struct Sync {
  Status status = Status::ok;
  std::int32_t native_error = 0;
  std::string message;  // empty when ok
  bool ok() const noexcept { return status == Status::ok; }
};

struct SessionStats {
  std::uint32_t max = 0;       // 0 = no limit
  std::uint32_t active = 0;    // accepted sockets of this listener not yet closed by the application
  std::uint64_t refused = 0;   // connections refused because the limit was reached
};

struct SocketFaults {
  std::uint32_t max_bytes_per_call = 0;  // 0 = no cap
  enum class Call : std::uint8_t { none, send, recv } fail_call = Call::none;
  std::uint32_t fail_nth = 0;            // 1-based count of that call on this socket
  std::int32_t fail_errno = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const noexcept = 0;  // "epoll", "uring", "iocp"

  virtual Sync listen(const std::shared_ptr<Port>& port, std::uint64_t key, const std::string& host,
                      std::uint16_t bind_port, int backlog, SocketId& out, std::uint16_t& bound_port) = 0;
  virtual Sync accept(SocketId listener, std::uint64_t token, std::uint64_t new_key, OpId& op) = 0;
  virtual Sync connect(const std::shared_ptr<Port>& port, std::uint64_t key, std::uint64_t token,
                       const std::string& host, std::uint16_t remote_port, SocketId& out, OpId& op) = 0;
  // length 0 = readiness probe: completes with 0 bytes and consumes nothing (ok when data is readable,
  // eof when the peer closed and nothing is left, reset on RST).
  virtual Sync recv(SocketId s, std::uint32_t length, std::uint64_t token, OpId& op) = 0;
  // Pool-backed receive (CP-POOL-005; the contract is at the top of recv_pool.h). At most `length` bytes
  // (1.., capped by the pool's buffer size) land in a buffer taken from `pool` at the moment the receive
  // is attempted; the completion carries Packet::buffer = that buffer's id (held by the application until
  // it releases it through the pool) and take_data(op) returns a copy of the bytes. No free buffer at that
  // moment: status pool_exhausted, native error ENOBUFS (WSAENOBUFS), bytes 0, Packet::buffer = none, and
  // nothing was read from the socket. The first pooled receive binds the pool (RecvPool::bind).
  virtual Sync recv_pooled(SocketId s, std::uint32_t length, const std::shared_ptr<RecvPool>& pool,
                           std::uint64_t token, OpId& op) = 0;
  // partial = false: completes with every byte or an error (the back-end resubmits the rest itself);
  // partial = true: a short write completes with the bytes sent so far.
  virtual Sync send(SocketId s, const std::uint8_t* data, std::size_t n, std::uint64_t token, bool partial,
                    OpId& op) = 0;
  virtual Sync shutdown(SocketId s, bool send_dir, bool recv_dir) = 0;
  // Every pending operation completes exactly once with Status::aborted, after close returns.
  virtual Sync close(SocketId s, bool abortive) = 0;
  // op = 0: every pending operation on s. found = whether anything was pending (else: not-found).
  virtual Sync cancel(SocketId s, OpId op, bool& found) = 0;
  virtual Sync set_buffers(SocketId s, int send_bytes, int recv_bytes) = 0;  // <= 0: leave as is
  virtual Sync set_faults(SocketId s, const SocketFaults& f) = 0;
  // Session limit on a listener (CP-POOL-007): at most `max` sockets accepted from it are open at once
  // (max 0 = no limit). A connection that arrives while `max` are open is accepted by the back-end and
  // refused: `full_message` (may be empty) is written to it, its sending side is shut down (the peer reads
  // the message, then end of stream) and it is closed; no accept completes for it, the pending accept
  // stays pending, and `refused` counts it. A session ends when the application closes the accepted
  // socket (close(), either kind); a peer's disconnect alone does not end it.
  virtual Sync set_session_limit(SocketId listener, std::uint32_t max, const std::vector<std::uint8_t>& full_message) = 0;
  virtual Sync session_stats(SocketId listener, SessionStats& out) = 0;
  // The data of a completed recv, once; false if there is none (already taken, not a recv, unknown op).
  virtual bool take_data(OpId op, std::vector<std::uint8_t>& out) = 0;
  // Closes every socket (pending operations complete with aborted) and stops the back-end's threads.
  virtual void shutdown_all() = 0;
};

// Factories. A back-end that cannot run here returns nullptr and says why (e.g. "io_uring_setup: EPERM").
std::unique_ptr<Backend> make_epoll_backend(std::string& why);
std::unique_ptr<Backend> make_uring_backend(std::string& why);
// io_uring only (tests): how many reaps found completions parked in the kernel's overflow list; 0 for
// any other back-end.
std::uint64_t uring_cq_overflows(const Backend& b) noexcept;

}  // namespace cpspec
