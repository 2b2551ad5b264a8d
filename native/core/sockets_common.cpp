#include "sockets_common.h"

#include <cerrno>
#include <cstring>
#include <mutex>

#if defined(_WIN32)
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

namespace cpspec::sockets {

Status status_from_errno(int e) noexcept {
  switch (e) {
    case 0: return Status::ok;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
    case ENOTCONN:
    case ENETRESET:
    case EHOSTUNREACH:
    case ENETUNREACH:
#ifdef ENETDOWN
    case ENETDOWN:
#endif
#ifdef EHOSTDOWN
    case EHOSTDOWN:
#endif
#ifdef EPROTO
    case EPROTO:
#endif
      return Status::reset;
    case ECONNREFUSED: return Status::refused;
    case ECANCELED: return Status::aborted;
    case ETIMEDOUT: return Status::timeout;
    case ENOBUFS: return Status::pool_exhausted;
    default: return Status::invalid;  // EBADF, ENOTSOCK, EINVAL, ...
  }
}

bool is_sticky_error(int e) noexcept { return e == ECONNRESET || e == ECONNABORTED || e == ETIMEDOUT || e == ENETRESET; }

namespace {
struct Registry {
  std::mutex mu;
  Backend* slots[kMaxBackends + 1] = {};
  std::uint32_t next = 1;  // round robin, so a freed index is not reused at once
};
Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: back-ends may outlive static destruction
  return *r;
}
}  // namespace

std::uint32_t register_backend(Backend* b) noexcept {
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  for (std::uint32_t i = 0; i < kMaxBackends; ++i) {
    std::uint32_t idx = r.next;
    r.next = r.next == kMaxBackends ? 1 : r.next + 1;
    if (r.slots[idx] == nullptr) {
      r.slots[idx] = b;
      return idx;
    }
  }
  return 0;
}

void unregister_backend(std::uint32_t index) noexcept {
  if (index == 0 || index > kMaxBackends) return;
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  r.slots[index] = nullptr;
}

bool take_op_data(OpId op, std::vector<std::uint8_t>& out) {
  const std::uint32_t idx = op_backend_index(op);
  if (idx == 0 || idx > kMaxBackends) return false;
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  Backend* b = r.slots[idx];
  return b != nullptr && b->take_data(op, out);
}

bool parse_address(const std::string& host, std::uint16_t port, sockaddr_storage& ss, socklen_t& len) {
  std::memset(&ss, 0, sizeof ss);
  const std::string h = host.empty() || host == "localhost" ? "127.0.0.1" : host;
  auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
  if (inet_pton(AF_INET, h.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
    return true;
  }
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET6, h.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

Sync sync_error(Status s, int native_error, std::string message) {
  Sync r;
  r.status = s;
  r.native_error = native_error;
  r.message = std::move(message);
  return r;
}

Sync sync_errno(int e, const std::string& what) {
  return sync_error(status_from_errno(e), e, what + ": " + std::strerror(e));
}

Sync check_send_args(const std::uint8_t* data, std::size_t n) {
  if (n > 0xFFFFFFFFu) return sync_error(Status::invalid, EINVAL, "send: at most 4294967295 bytes per send");
  if (n > 0 && data == nullptr) return sync_error(Status::invalid, EINVAL, "send: no data");
  return sync_ok();
}

Sync check_faults(const SocketFaults& f) {
  if (f.fail_call != SocketFaults::Call::none && (f.fail_nth == 0 || f.fail_errno <= 0)) {
    return sync_error(Status::invalid, EINVAL, "set_faults: fail_nth must be >= 1 and fail_errno > 0");
  }
  return sync_ok();
}

#if !defined(_WIN32)
Sync open_listener(const std::string& host, std::uint16_t bind_port, int backlog, bool nonblocking, int& fd,
                   std::uint16_t& bound_port) {
  fd = -1;
  bound_port = 0;
  sockaddr_storage ss;
  socklen_t len = 0;
  if (!parse_address(host, bind_port, ss, len)) return sync_error(Status::invalid, EINVAL, "listen: bad host '" + host + "'");
  const int s = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (s < 0) return sync_errno(errno, "listen: socket");
  int one = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(s, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(s, backlog > 0 ? backlog : 128) != 0) {
    const int e = errno;
    ::close(s);
    return sync_errno(e, "listen: bind/listen");
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&bound), &blen);
  bound_port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                 : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  fd = s;
  return sync_ok();
}

Sync open_stream_for(const std::string& host, std::uint16_t remote_port, bool nonblocking, int& fd,
                     sockaddr_storage& ss, socklen_t& len) {
  fd = -1;
  len = 0;
  if (!parse_address(host, remote_port, ss, len)) return sync_error(Status::invalid, EINVAL, "connect: bad host '" + host + "'");
  const int s = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (s < 0) return sync_errno(errno, "connect: socket");
  int one = 1;
  ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fd = s;
  return sync_ok();
}

Sync set_socket_buffers(int fd, int send_bytes, int recv_bytes) {
  if (send_bytes > 0 && ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_bytes, sizeof send_bytes) != 0) return sync_errno(errno, "setsockopt(SO_SNDBUF)");
  if (recv_bytes > 0 && ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &recv_bytes, sizeof recv_bytes) != 0) return sync_errno(errno, "setsockopt(SO_RCVBUF)");
  return sync_ok();
}
#endif

Sync check_session_limit(const std::vector<std::uint8_t>& message) {
  if (message.size() > kMaxSessionMessage)
    return sync_error(Status::invalid, 0, "the server-full message is longer than " + std::to_string(kMaxSessionMessage) + " bytes");
  return sync_ok();
}

#if !defined(_WIN32)
void refuse_connection(int fd, const std::vector<std::uint8_t>& message) noexcept {
  std::size_t off = 0;
  while (off < message.size()) {
    const ssize_t n = ::send(fd, message.data() + off, message.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;  // a fresh socket's send buffer holds far more than kMaxSessionMessage: this is a dead peer
  }
  ::shutdown(fd, SHUT_WR);
  ::close(fd);
}
#endif

void Outbox::release(std::unique_lock<std::mutex>& lk, DataMap& data, void (*after_unlock)(void*), void* arg) {
  if (!lk.owns_lock()) return;
  std::unique_lock<std::mutex> pg;
  thread_local std::vector<Item> out;  // empty between calls; swapping keeps both capacities
  if (!out_.empty()) {
    out.swap(out_);
    pg = std::unique_lock<std::mutex>(post_mu_);
  }
  lk.unlock();
  if (after_unlock != nullptr) after_unlock(arg);
  if (out.empty()) return;
  std::vector<OpId> lost;  // allocates only when a port is closed
  // Consecutive packets for the same port go in one post_many: one lock of the port and one wake-up, and
  // the woken waiter is handed the whole run at once (order within and across runs is kept).
  thread_local std::vector<Packet> run;
  for (std::size_t i = 0; i < out.size();) {
    std::size_t j = i;
    run.clear();
    while (j < out.size() && out[j].port == out[i].port) run.push_back(out[j++].packet);
    if (!out[i].port->post_many(run.data(), run.size())) {
      for (std::size_t k = i; k < j; ++k)
        if (out[k].has_data) lost.push_back(out[k].packet.op);
    }
    i = j;
  }
  pg.unlock();
  out.clear();
  if (lost.empty()) return;
  lk.lock();
  for (OpId id : lost) data.erase(id);  // the port is closed: nobody will ever take the data
  lk.unlock();
}

}  // namespace cpspec::sockets
