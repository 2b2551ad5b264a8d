// The IOCP socket back-end: the proactor operations done by the Windows kernel itself (AcceptEx, ConnectEx,
// WSARecv, WSASend, CancelIoEx), completing to the application's own kernel completion port (port_iocp.cpp).
//
// Semantics (backend.h; the same as the epoll and io_uring back-ends, whose top comment in
// native/epoll/epoll_backend.cpp is normative; native/iocp/README.md has the table of Windows calls):
// - Every stream socket is associated (CreateIoCompletionPort) with the application's port under its key; a
//   kernel completion is an iocp::IoRecord (iocp_port.h), and when the application dequeues it, the port
//   calls back here (on the dequeuing thread, under this back-end's one lock) to turn it into the
//   cpspec::Packet, or to swallow an intermediate step (the rest of a send-all, a probe re-armed). All state
//   changes and all user-space completions happen under the lock; a completion the back-end makes itself
//   (sticky errors, eof, cancels of queued ops, injected faults, synchronous results) is posted to the port
//   under it.
// - Listeners are associated with the back-end's own "relay" port instead, served by one thread that turns
//   AcceptEx completions into packets posted to the listener's application port: an accept re-armed after
//   a refused session (set_session_limit) or after a connection that died before it was taken must not wait
//   for the application to dequeue. The accepted socket is associated with the application's port.
// - FILE_SKIP_COMPLETION_PORT_ON_SUCCESS is set on every socket when every TCP provider is an IFS one
//   (XP1_IFS_HANDLES): a call that succeeds at once then queues no kernel packet, and its result is handled
//   inline by the submitting thread (a capped send-all loops there without a round trip through the port).
//   The application always gets exactly one packet per operation either way.
// - Per socket, FIFO queues, ONE kernel operation in flight per direction: receives (recv, probe, pooled)
//   and sends are issued one at a time in issue order, so a send-all can resubmit its remainder before the
//   next send's bytes, eof/reset are sticky in user space, and a cancel of a queued op never touches the
//   kernel. Accepts are all issued at once (AcceptEx), each with its own accept socket.
// - recv (length > 0): WSARecv of min(length, 4 MiB, fault cap) bytes; completes with what arrived (ok),
//   0 bytes = eof (sticky), an error = its status (reset-class errors sticky: every later recv/send fails at
//   once with the same status and code; Wine 8.0 reports a 0-byte success after a reset, which would
//   otherwise read as eof).
// - probe (length 0): a zero-length WSARecv; when it completes, a non-blocking recv(MSG_PEEK) of 1 byte tells
//   data (ok/0, nothing consumed) from end of stream (eof/0) and a reset; nothing there any more -> re-armed.
// - pooled recv (recv_pool.h): no kernel-provided buffers on Windows. At its first attempt a non-blocking
//   peek: nothing there -> pool_exhausted at once if the pool has no free buffer (as io_uring picks its
//   buffer at issue), else a zero-length WSARecv; when that completes (or at once when something was
//   there), a buffer is taken (RecvPool::try_acquire) and a non-blocking recv fills it. No buffer ->
//   pool_exhausted (WSAENOBUFS), 0 bytes, nothing read.
// - send: WSASend; partial = false: a completion with fewer bytes than submitted (a fault cap, or a stack
//   that completes short) is resubmitted with the rest, so the op completes with every byte or an error
//   with the exact prefix. partial = true: one WSASend of at most the socket's SO_SNDBUF (64 KiB when 0),
//   completing with what it moved (Windows itself never completes an overlapped send short).
// - close: abortive sets SO_LINGER {1, 0}; ops not yet issued complete aborted (995) at once; ops in the
//   kernel are marked cancelled and CancelIoEx'ed, then closesocket: their kernel completions (995, or
//   Wine's 676/6, or a success that raced) are reported aborted (a receive that raced with data: ok with
//   the data). Nothing pending: no packet. Later calls on the id: invalid ("unknown socket").
// - cancel(s, op) (0 = all): queued ops complete aborted at once; an op in the kernel is marked cancelled
//   and CancelIoEx'ed (its packet is aborted unless it raced to a success). found = the op was pending.
// - shutdown: shutdown(); SD_RECEIVE also ends receiving here (pending and later receives complete eof).
// - fault injection: max_bytes_per_call caps each WSARecv/WSASend (and a pooled recv's recv); fail_nth
//   fails that call instead of making it, with fail_errno taken as a Win32/Winsock code (README).
#include "iocp_backend.h"

#include "iocp_port.h"

#include <mswsock.h>
#include <ws2tcpip.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "recv_pool.h"
#include "sockets_common.h"

#ifndef WSA_FLAG_NO_HANDLE_INHERIT
#define WSA_FLAG_NO_HANDLE_INHERIT 0x80
#endif
#ifndef FILE_SKIP_COMPLETION_PORT_ON_SUCCESS
#define FILE_SKIP_COMPLETION_PORT_ON_SUCCESS 0x1
#endif
#ifndef ERROR_HANDLES_CLOSED
#define ERROR_HANDLES_CLOSED 676L
#endif

namespace cpspec {

namespace iocp {

Status status_from_win32(std::uint32_t e, bool cancelled) noexcept {
  if (e == 0) return Status::ok;
  if (cancelled) return Status::aborted;
  switch (e) {
    case ERROR_NETNAME_DELETED:
    case WSAECONNRESET:
    case WSAENETRESET:
    case WSAESHUTDOWN:
    case WSAENOTCONN:
    case WSAEHOSTUNREACH:
    case ERROR_HOST_UNREACHABLE:
    case WSAENETUNREACH:
    case ERROR_NETWORK_UNREACHABLE:
    case WSAENETDOWN:
    case WSAEHOSTDOWN:
    case ERROR_CONNECTION_ABORTED:
    case WSAECONNABORTED:
      return Status::reset;
    case ERROR_OPERATION_ABORTED:
    case ERROR_HANDLES_CLOSED:
      return Status::aborted;
    case ERROR_CONNECTION_REFUSED:
    case WSAECONNREFUSED:
      return Status::refused;
    case WSAETIMEDOUT:
    case ERROR_SEM_TIMEOUT:
      return Status::timeout;
    case WSAENOBUFS:
      return Status::pool_exhausted;
    default:
      return Status::invalid;
  }
}

bool is_sticky_win32(std::uint32_t e) noexcept {
  switch (e) {
    case ERROR_NETNAME_DELETED:
    case WSAECONNRESET:
    case WSAENETRESET:
    case ERROR_CONNECTION_ABORTED:
    case WSAECONNABORTED:
    case WSAETIMEDOUT:
    case ERROR_SEM_TIMEOUT:
      return true;
    default:
      return false;
  }
}

}  // namespace iocp

namespace {

using iocp::is_sticky_win32;
using iocp::status_from_win32;
using sockets::FaultState;
using sockets::Op;
using sockets::OpKind;

constexpr std::size_t kMaxRecvChunk = std::size_t{4} << 20;
constexpr DWORD kAddrLen = sizeof(sockaddr_in6) + 16;  // AcceptEx: room for each address
constexpr std::uint32_t kDefaultPartialChunk = 64 * 1024;

// ---------------------------------------------------------------------------------------------------------
// Winsock, once per process
// ---------------------------------------------------------------------------------------------------------

struct Winsock {
  bool ok = false;
  std::string why;
  LPFN_ACCEPTEX accept_ex = nullptr;
  LPFN_CONNECTEX connect_ex = nullptr;
  bool skip_ok = false;  // FILE_SKIP_COMPLETION_PORT_ON_SUCCESS may be used
  std::string skip_note;
};

std::string win32_message(DWORD e) {
  char buf[256] = {};
  DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr, e, 0, buf, sizeof buf, nullptr);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == '.' || buf[n - 1] == ' ')) buf[--n] = 0;
  std::string m = "error " + std::to_string(e);
  if (n > 0) m += " (" + std::string(buf, n) + ")";
  return m;
}

const Winsock& winsock() {
  static const Winsock w = [] {
    Winsock r;
    WSADATA wd;
    if (int e = WSAStartup(MAKEWORD(2, 2), &wd); e != 0) {
      r.why = "WSAStartup: " + win32_message(static_cast<DWORD>(e));
      return r;
    }
    SOCKET s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET) {
      r.why = "WSASocket: " + win32_message(WSAGetLastError());
      return r;
    }
    GUID ga = WSAID_ACCEPTEX, gc = WSAID_CONNECTEX;
    DWORD n = 0;
    if (WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &ga, sizeof ga, &r.accept_ex, sizeof r.accept_ex, &n, nullptr, nullptr) != 0 ||
        WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &gc, sizeof gc, &r.connect_ex, sizeof r.connect_ex, &n, nullptr, nullptr) != 0) {
      r.why = "WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER): " + win32_message(WSAGetLastError());
      closesocket(s);
      return r;
    }
    closesocket(s);
    // Skip-on-success is safe only when no layered (non-IFS) provider sits on TCP: such a provider may
    // complete an operation through a path that still queues a packet.
    DWORD len = 0;
    WSAEnumProtocolsW(nullptr, nullptr, &len);
    std::vector<char> buf(len > 0 ? len : 1);
    int count = len > 0 ? WSAEnumProtocolsW(nullptr, reinterpret_cast<WSAPROTOCOL_INFOW*>(buf.data()), &len) : SOCKET_ERROR;
    if (count == SOCKET_ERROR) {
      r.skip_note = "skip-on-success off (WSAEnumProtocols: " + win32_message(WSAGetLastError()) + ")";
    } else {
      bool all_ifs = true;
      int tcp = 0;
      const auto* p = reinterpret_cast<const WSAPROTOCOL_INFOW*>(buf.data());
      for (int i = 0; i < count; ++i) {
        if (p[i].iProtocol != IPPROTO_TCP) continue;
        ++tcp;
        if ((p[i].dwServiceFlags1 & XP1_IFS_HANDLES) == 0) all_ifs = false;
      }
      r.skip_ok = all_ifs && tcp > 0;
      r.skip_note = r.skip_ok ? "FILE_SKIP_COMPLETION_PORT_ON_SUCCESS on (every TCP provider is IFS)"
                              : "skip-on-success off (a TCP provider is not IFS)";
    }
    r.ok = true;
    return r;
  }();
  return w;
}

Sync sync_win32(DWORD e, const std::string& what) {
  return sockets::sync_error(status_from_win32(e, false), static_cast<std::int32_t>(e), what + ": " + win32_message(e));
}

using sockets::parse_address;

SOCKET new_socket(int family) {
  return WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
}

// A non-blocking peek of one byte: > 0 data, 0 end of stream, < 0 -(Winsock error) (WSAEWOULDBLOCK: nothing).
int peek1(SOCKET h) {
  char c;
  const int n = ::recv(h, &c, 1, MSG_PEEK);
  if (n == SOCKET_ERROR) return -WSAGetLastError();
  return n;
}

// ---------------------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------------------

struct Core;
bool on_kernel_completion(iocp::IoRecord* rec, ULONG_PTR key, DWORD bytes, DWORD error, bool closing, Packet& out);

// One operation. While `issued`, the kernel owns its OVERLAPPED: the record is freed (or re-issued) only by
// the completion callback, even after its socket was closed.
struct IocpOp : iocp::IoRecord {
  std::shared_ptr<Core> core;  // the callback may run after the back-end object is gone
  Op op;
  SocketId sock = 0;           // its socket (for an accept: the listener)
  bool issued = false;
  bool cancelled = false;      // we cancelled it (cancel, close, shutdown_all): failures are aborted
  bool as_eof = false;         // cancelled by a local shutdown(SD_RECEIVE): completes eof
  SOCKET accept_socket = INVALID_SOCKET;
  std::vector<std::uint8_t> buf;  // recv: the data; accept: the addresses
  WSABUF wb{};
  DWORD flags = 0;
  DWORD chunk = 0;             // send: the bytes of the WSASend in flight
  std::shared_ptr<Port> port;  // accept: the listener's port (the relay posts its packet there)
  std::uint64_t app_key = 0;   // accept: the listener's key

  IocpOp() { on_complete = &on_kernel_completion; }
  ~IocpOp() {
    if (accept_socket != INVALID_SOCKET) closesocket(accept_socket);
  }
  void reset_overlapped() { ov = OVERLAPPED{}; }
};

enum class SockKind : std::uint8_t { listener, stream };

struct Sock {
  SocketId id = 0;
  SOCKET h = INVALID_SOCKET;
  SockKind kind = SockKind::stream;
  int family = AF_INET;
  std::shared_ptr<Port> port;
  std::uint64_t key = 0;
  bool skip = false;            // FILE_SKIP_COMPLETION_PORT_ON_SUCCESS is set on h
  bool relayed = false;         // listener: associated with the back-end's relay port, not the application's
  IocpOp* connect_op = nullptr; // pending connect (issued)
  bool connecting = false;
  bool eof = false;             // sticky end of stream
  DWORD error = 0;              // sticky connection error
  std::deque<IocpOp*> rq;       // recv, probe, pooled recv: only the front may be issued
  std::deque<IocpOp*> sq;       // send: only the front may be issued
  std::vector<IocpOp*> accepts; // listener: every pending accept (all issued)
  FaultState faults;
  sockets::SessionGate sessions;
  SocketId session_of = 0;
};

// The result of one kernel call made by the back-end: pending (a packet will come), or done at once.
struct Call {
  bool pending = false;
  DWORD bytes = 0;
  DWORD error = 0;
};

struct Core {
  std::mutex mu;
  bool stopped = false;
  std::uint32_t index = 0;
  std::uint64_t op_seq = 0;
  SocketId sock_seq = 0;
  std::unordered_map<SocketId, std::unique_ptr<Sock>> socks;
  std::unordered_map<OpId, std::vector<std::uint8_t>> data;
  std::weak_ptr<Core> self;
  HANDLE relay = nullptr;       // listeners' completion port, served by the relay thread
  std::size_t relay_pending = 0;  // accepts in the kernel (issued on a relayed listener)

  Sock* find(SocketId id) {
    auto it = socks.find(id);
    return it == socks.end() ? nullptr : it->second.get();
  }

  IocpOp* new_op(OpKind k, std::uint64_t token, SocketId sock) {
    auto* o = new IocpOp;
    o->core = self.lock();
    o->op.id = sockets::make_op_id(index, ++op_seq);
    o->op.kind = k;
    o->op.token = token;
    o->sock = sock;
    return o;
  }

  // Fills the packet of o (exactly once: Op::complete_once) into *out, or posts it to port when out is null.
  void deliver(Port* port, std::uint64_t key, IocpOp* o, Status st, DWORD err, std::uint32_t bytes, Packet* out,
               SocketId new_socket = 0, std::vector<std::uint8_t>* bytes_in = nullptr, std::uint32_t buffer = kNoPoolBuffer) {
    if (!o->op.complete_once()) return;
    Packet p;
    p.key = key;
    p.bytes = bytes;
    p.token = o->op.token;
    p.status = st;
    p.native_error = static_cast<std::int32_t>(err);
    p.op = o->op.id;
    p.socket = new_socket;
    p.buffer = buffer;
    if (bytes_in != nullptr && !bytes_in->empty()) data[o->op.id] = std::move(*bytes_in);
    if (out != nullptr) {
      *out = p;
    } else if (port == nullptr || !port->post(p)) {
      data.erase(o->op.id);  // the port is closed: nobody will ever take the data
      if (buffer != kNoPoolBuffer && o->op.pool) o->op.pool->release(buffer);
    }
  }

  // Completes o, which is no longer in any queue and not issued, and frees it.
  void finish(Sock& s, IocpOp* o, Status st, DWORD err, std::uint32_t bytes, Packet* out, SocketId ns = 0,
              std::vector<std::uint8_t>* bytes_in = nullptr, std::uint32_t buffer = kNoPoolBuffer) {
    deliver(s.port.get(), s.key, o, st, err, bytes, out, ns, bytes_in, buffer);
    delete o;
  }

  void make_sticky(Sock& s, DWORD e) {
    if (is_sticky_win32(e) && s.error == 0) s.error = e;
  }

  static bool port_closed(const Sock& s) { return s.port->is_closed(); }

  // --- kernel calls (under mu). Each counts the port's in-flight I/O and takes it back when no packet
  // will be queued (a synchronous failure; a synchronous success on a skip-on-success socket).
  Call finish_call(Sock& s, int rc, DWORD sync_bytes, bool skip) {
    Call c;
    if (rc == 0) {  // succeeded at once
      if (skip) {
        retire(s);
        c.bytes = sync_bytes;
        return c;
      }
      c.pending = true;  // the packet comes anyway
      return c;
    }
    const DWORD e = static_cast<DWORD>(WSAGetLastError());
    if (e == WSA_IO_PENDING) {
      c.pending = true;
      return c;
    }
    retire(s);
    c.error = e;
    return c;
  }

  // The in-flight count of the port the kernel packet would go to (iocp_port.h; the relay keeps its own).
  void issue(Sock& s) {
    if (s.relayed) ++relay_pending;
    else iocp::io_issued(*s.port);
  }
  void retire(Sock& s) {
    if (s.relayed) --relay_pending;
    else iocp::io_retired(*s.port);
  }

  Call call_recv(Sock& s, IocpOp* o, DWORD len) {
    o->reset_overlapped();
    o->buf.resize(len);
    o->wb.buf = len > 0 ? reinterpret_cast<char*>(o->buf.data()) : nullptr;
    o->wb.len = len;
    o->flags = 0;
    DWORD got = 0;
    issue(s);
    const int rc = WSARecv(s.h, &o->wb, 1, &got, &o->flags, &o->ov, nullptr);
    Call c = finish_call(s, rc, got, s.skip);
    o->issued = c.pending;
    return c;
  }

  Call call_send(Sock& s, IocpOp* o, DWORD len) {
    o->reset_overlapped();
    o->wb.buf = reinterpret_cast<char*>(o->op.data.data() + o->op.sent);
    o->wb.len = len;
    o->chunk = len;
    DWORD sent = 0;
    issue(s);
    const int rc = WSASend(s.h, &o->wb, 1, &sent, 0, &o->ov, nullptr);
    Call c = finish_call(s, rc, sent, s.skip);
    o->issued = c.pending;
    return c;
  }

  Call call_accept(Sock& l, IocpOp* o) {
    o->reset_overlapped();
    if (o->accept_socket != INVALID_SOCKET) closesocket(o->accept_socket);
    o->accept_socket = new_socket(l.family);
    if (o->accept_socket == INVALID_SOCKET) {
      Call c;
      c.error = static_cast<DWORD>(WSAGetLastError());
      return c;
    }
    o->buf.assign(2 * kAddrLen, 0);
    DWORD got = 0;
    issue(l);
    const BOOL ok = winsock().accept_ex(l.h, o->accept_socket, o->buf.data(), 0, kAddrLen, kAddrLen, &got, &o->ov);
    Call c = finish_call(l, ok ? 0 : SOCKET_ERROR, got, l.skip);
    o->issued = c.pending;
    return c;
  }

  // ---------------------------------------------------------------------------------------------------
  // Receives
  // ---------------------------------------------------------------------------------------------------

  // Under mu: issues the front receive of s and handles whatever completes at once, until one is in the
  // kernel or the queue is empty.
  void run_recvs(Sock& s) {
    while (!s.rq.empty()) {
      IocpOp* o = s.rq.front();
      if (o->issued || s.connecting) return;
      if (s.error != 0) {
        s.rq.pop_front();
        finish(s, o, status_from_win32(s.error, false), s.error, 0, nullptr);
        continue;
      }
      if (s.eof) {
        s.rq.pop_front();
        finish(s, o, Status::eof, 0, 0, nullptr);
        continue;
      }
      if (o->cancelled || port_closed(s)) {  // cancelled between two steps, or nobody to tell any more
        s.rq.pop_front();
        finish(s, o, Status::aborted, ERROR_OPERATION_ABORTED, 0, nullptr);
        continue;
      }
      if (o->op.pool && !o->op.issued) {  // a pooled receive's first attempt: at once if something is there
        o->op.issued = true;
        const int pk = peek1(s.h);
        if (pk != -WSAEWOULDBLOCK) {
          attempt_pooled(s, o, 0, nullptr);
          continue;
        }
        if (o->op.pool->stats().available == 0) {  // io_uring picks the buffer at issue: same outcome
          o->op.pool->note_exhausted();
          s.rq.pop_front();
          finish(s, o, Status::pool_exhausted, WSAENOBUFS, 0, nullptr);
          continue;
        }
      }
      Call c;
      if (o->op.kind == OpKind::probe || o->op.pool) {
        c = call_recv(s, o, 0);
      } else {
        if (const int injected = s.faults.on_call(false); injected != 0) {
          const auto e = static_cast<DWORD>(injected);
          make_sticky(s, e);
          s.rq.pop_front();
          finish(s, o, status_from_win32(e, false), e, 0, nullptr);
          continue;
        }
        c = call_recv(s, o, static_cast<DWORD>(s.faults.cap(std::min<std::size_t>(o->op.length, kMaxRecvChunk))));
      }
      if (c.pending) return;
      recv_result(s, o, c.bytes, c.error, nullptr);
    }
  }

  // Under mu: the kernel receive of o (the front of s.rq, not issued any more) ended with (bytes, err).
  // Completes o (into *out, or posted) or leaves it at the front for its next step. True when delivered
  // into *out.
  bool recv_result(Sock& s, IocpOp* o, DWORD bytes, DWORD err, Packet* out) {
    auto done = [&](Status st, DWORD e, std::uint32_t n, std::vector<std::uint8_t>* d = nullptr) {
      s.rq.pop_front();
      finish(s, o, st, e, n, out, 0, d);
      return out != nullptr;
    };
    if (o->as_eof && err != 0) return done(Status::eof, 0, 0);
    const bool probe_stage = o->op.kind == OpKind::probe || o->op.pool;
    if (err != 0) {
      if (o->cancelled) return done(Status::aborted, err, 0);
      make_sticky(s, err);
      if (o->op.pool) return attempt_pooled(s, o, err, out);  // the error is there: the attempt needs a buffer
      return done(status_from_win32(err, false), err, 0);
    }
    if (!probe_stage) {
      if (bytes == 0) {
        s.eof = true;
        return done(Status::eof, 0, 0);
      }
      o->buf.resize(bytes);
      std::vector<std::uint8_t> d = std::move(o->buf);
      return done(Status::ok, 0, bytes, &d);
    }
    if (o->cancelled) return done(Status::aborted, ERROR_OPERATION_ABORTED, 0);
    if (o->op.pool) return attempt_pooled(s, o, 0, out);
    const int pk = peek1(s.h);
    if (pk > 0) return done(Status::ok, 0, 0);
    if (pk == 0) {
      s.eof = true;
      return done(Status::eof, 0, 0);
    }
    if (pk == -WSAEWOULDBLOCK) return false;  // nothing there after all: run_recvs re-arms it
    const auto e = static_cast<DWORD>(-pk);
    make_sticky(s, e);
    return done(status_from_win32(e, false), e, 0);
  }

  // Under mu: one attempt of the pooled receive o at the front of s.rq (recv_pool.h): something (data, end of
  // stream, or the error `err` already reported) is there, so the attempt needs a buffer.
  bool attempt_pooled(Sock& s, IocpOp* o, DWORD err, Packet* out) {
    auto done = [&](Status st, DWORD e, std::uint32_t n, std::vector<std::uint8_t>* d = nullptr, std::uint32_t buffer = kNoPoolBuffer) {
      s.rq.pop_front();
      finish(s, o, st, e, n, out, 0, d, buffer);
      return out != nullptr;
    };
    pool::BufferHandle h;
    if (!o->op.pool->try_acquire(h)) return done(Status::pool_exhausted, WSAENOBUFS, 0);
    if (err == 0 && s.error != 0) err = s.error;
    if (err != 0) {
      o->op.pool->release(h.index);
      return done(status_from_win32(err, false), err, 0);
    }
    int n;
    DWORD e = 0;
    if (const int injected = s.faults.on_call(false); injected != 0) {
      n = SOCKET_ERROR;
      e = static_cast<DWORD>(injected);
    } else {
      const std::size_t want = s.faults.cap(std::min<std::size_t>(o->op.length, o->op.pool->buffer_size()));
      n = ::recv(s.h, reinterpret_cast<char*>(h.data), static_cast<int>(want), 0);
      if (n == SOCKET_ERROR) e = static_cast<DWORD>(WSAGetLastError());
    }
    if (n > 0) {
      const auto* b = reinterpret_cast<const std::uint8_t*>(h.data);
      std::vector<std::uint8_t> copy(b, b + n);
      return done(Status::ok, 0, static_cast<std::uint32_t>(n), &copy, h.index);
    }
    o->op.pool->release(h.index);  // nothing landed in it
    if (n == 0) {
      s.eof = true;
      return done(Status::eof, 0, 0);
    }
    if (e == WSAEWOULDBLOCK) {
      --s.faults.recv_calls;  // nothing was there after all: not a counted call; re-armed by run_recvs
      return false;
    }
    make_sticky(s, e);
    return done(status_from_win32(e, false), e, 0);
  }

  // ---------------------------------------------------------------------------------------------------
  // Sends
  // ---------------------------------------------------------------------------------------------------

  // partial = true: one WSASend moves at most max(SO_SNDBUF, 64 KiB) (an overlapped send never completes
  // short by itself on Windows: it completes once the stack has taken every byte).
  DWORD partial_chunk(Sock& s) {
    int v = 0;
    int len = sizeof v;
    if (getsockopt(s.h, SOL_SOCKET, SO_SNDBUF, reinterpret_cast<char*>(&v), &len) == 0 && v > 0) {
      return std::max<DWORD>(static_cast<DWORD>(v), kDefaultPartialChunk);
    }
    return kDefaultPartialChunk;
  }

  void run_sends(Sock& s) {
    while (!s.sq.empty()) {
      IocpOp* o = s.sq.front();
      if (o->issued || s.connecting) return;
      const auto sent = static_cast<std::uint32_t>(o->op.sent);
      if (s.error != 0) {
        s.sq.pop_front();
        finish(s, o, status_from_win32(s.error, false), s.error, sent, nullptr);
        continue;
      }
      if (o->cancelled || port_closed(s)) {
        s.sq.pop_front();
        finish(s, o, Status::aborted, ERROR_OPERATION_ABORTED, sent, nullptr);
        continue;
      }
      if (o->op.remaining() == 0 || (o->op.partial && o->op.sent > 0)) {
        s.sq.pop_front();
        finish(s, o, Status::ok, 0, sent, nullptr);
        continue;
      }
      if (const int injected = s.faults.on_call(true); injected != 0) {
        const auto e = static_cast<DWORD>(injected);
        make_sticky(s, e);
        s.sq.pop_front();
        finish(s, o, status_from_win32(e, false), e, sent, nullptr);
        continue;
      }
      std::size_t len = s.faults.cap(o->op.remaining());
      if (o->op.partial) len = std::min<std::size_t>(len, partial_chunk(s));
      len = std::min<std::size_t>(len, 0x7FFFFFFF);
      Call c = call_send(s, o, static_cast<DWORD>(len));
      if (c.pending) return;
      send_result(s, o, c.bytes, c.error, nullptr);
    }
  }

  // Under mu: the WSASend of o (front of s.sq, not issued any more) ended. True when delivered into *out.
  bool send_result(Sock& s, IocpOp* o, DWORD bytes, DWORD err, Packet* out) {
    o->op.account_sent(std::min<DWORD>(bytes, o->chunk));
    const auto sent = static_cast<std::uint32_t>(o->op.sent);
    auto done = [&](Status st, DWORD e) {
      s.sq.pop_front();
      finish(s, o, st, e, sent, out);
      return out != nullptr;
    };
    if (err != 0) {
      if (!o->cancelled) make_sticky(s, err);
      return done(status_from_win32(err, o->cancelled), err);
    }
    if (o->cancelled) return done(Status::aborted, ERROR_OPERATION_ABORTED);
    if (o->op.remaining() == 0 || o->op.partial) return done(Status::ok, 0);
    return false;  // the rest: run_sends resubmits it
  }

  // ---------------------------------------------------------------------------------------------------
  // Accept and connect
  // ---------------------------------------------------------------------------------------------------

  void remove_accept(Sock& l, IocpOp* o) {
    l.accepts.erase(std::remove(l.accepts.begin(), l.accepts.end(), o), l.accepts.end());
  }

  // Under mu: issues accept o on listener l until it is in the kernel or completed. o is in l.accepts.
  // True when delivered into *out.
  bool run_accept(Sock& l, IocpOp* o, Packet* out) {
    for (;;) {
      if (o->cancelled || port_closed(l)) {
        remove_accept(l, o);
        finish(l, o, Status::aborted, ERROR_OPERATION_ABORTED, 0, out);
        return out != nullptr;
      }
      Call c = call_accept(l, o);
      if (c.pending) return false;
      int r = accept_result(l, o, c.error, out);
      if (r >= 0) return r == 1;
      // re-armed: issue it again
    }
  }

  // Under mu: AcceptEx of o ended with err. Returns 1 delivered into *out, 0 completed (posted), -1 re-arm.
  int accept_result(Sock& l, IocpOp* o, DWORD err, Packet* out) {
    if (err != 0) {
      closesocket(o->accept_socket);
      o->accept_socket = INVALID_SOCKET;
      const Status st = status_from_win32(err, o->cancelled);
      if (st == Status::reset) return -1;  // that connection died before we took it: wait for the next
      remove_accept(l, o);
      finish(l, o, st, err, 0, out);
      return out != nullptr ? 1 : 0;
    }
    SOCKET a = o->accept_socket;
    setsockopt(a, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, reinterpret_cast<const char*>(&l.h), sizeof l.h);
    if (l.sessions.full()) {  // the documented refusal (backend.h): the accept stays pending
      ++l.sessions.refused;
      o->accept_socket = INVALID_SOCKET;
      refuse(a, l.sessions.message);
      return -1;
    }
    o->accept_socket = INVALID_SOCKET;
    SocketId nid = 0;
    Sync r = add_stream(a, l.family, l.port, o->op.new_key, nid);
    remove_accept(l, o);
    if (!r.ok()) {
      closesocket(a);
      finish(l, o, r.status, static_cast<DWORD>(r.native_error), 0, out);
      return out != nullptr ? 1 : 0;
    }
    if (l.sessions.max != 0) {
      ++l.sessions.active;
      find(nid)->session_of = l.id;
    }
    finish(l, o, Status::ok, 0, 0, out, nid);
    return out != nullptr ? 1 : 0;
  }

  static void refuse(SOCKET a, const std::vector<std::uint8_t>& message) {
    u_long nb = 1;
    ioctlsocket(a, FIONBIO, &nb);
    std::size_t off = 0;
    while (off < message.size()) {
      const int n = ::send(a, reinterpret_cast<const char*>(message.data() + off), static_cast<int>(message.size() - off), 0);
      if (n <= 0) break;  // a fresh socket's send buffer holds far more than kMaxSessionMessage
      off += static_cast<std::size_t>(n);
    }
    ::shutdown(a, SD_SEND);
    closesocket(a);
  }

  // Under mu: the ConnectEx of s ended with err. True when delivered into *out.
  bool connect_result(Sock& s, DWORD err, Packet* out) {
    IocpOp* o = s.connect_op;
    s.connect_op = nullptr;
    s.connecting = false;
    Status st = Status::ok;
    if (err == 0 && !o->cancelled) {
      setsockopt(s.h, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, nullptr, 0);
    } else {
      if (err == 0) err = ERROR_OPERATION_ABORTED;  // cancelled, though it raced to success: unusable
      st = status_from_win32(err, o->cancelled);
      if (s.error == 0) s.error = o->cancelled ? ERROR_OPERATION_ABORTED : err;  // queued ops fail with it
    }
    finish(s, o, st, st == Status::ok ? 0 : err, 0, out);
    run_recvs(s);
    run_sends(s);
    return out != nullptr;
  }

  // ---------------------------------------------------------------------------------------------------
  // Sockets
  // ---------------------------------------------------------------------------------------------------

  // Under mu: the per-socket setup shared by every socket: association with the port, skip-on-success.
  Sync associate(SOCKET h, HANDLE cport, std::uint64_t key, bool& skip) {
    if (CreateIoCompletionPort(reinterpret_cast<HANDLE>(h), cport, static_cast<ULONG_PTR>(key), 0) == nullptr) {
      return sync_win32(GetLastError(), "CreateIoCompletionPort(socket)");
    }
    skip = winsock().skip_ok && SetFileCompletionNotificationModes(reinterpret_cast<HANDLE>(h), FILE_SKIP_COMPLETION_PORT_ON_SUCCESS);
    return sockets::sync_ok();
  }

  Sync add_socket(SOCKET h, SockKind kind, int family, const std::shared_ptr<Port>& port, std::uint64_t key, SocketId& out) {
    if (port->is_closed()) return sockets::sync_error(Status::invalid, ERROR_INVALID_HANDLE, "the port is closed");
    bool skip = false;
    // Listeners go to the relay port (the relay thread turns their accepts into packets on `port`, so a
    // connection beyond a session limit is refused without the application dequeuing); streams to `port`.
    const bool relayed = kind == SockKind::listener;
    if (Sync r = associate(h, relayed ? relay : iocp::port_handle(*port), relayed ? sock_seq + 1 : key, skip); !r.ok()) return r;
    auto s = std::make_unique<Sock>();
    s->relayed = relayed;
    s->id = ++sock_seq;
    s->h = h;
    s->kind = kind;
    s->family = family;
    s->port = port;
    s->key = key;
    s->skip = skip;
    out = s->id;
    socks.emplace(out, std::move(s));
    return sockets::sync_ok();
  }

  // A connected stream socket: TCP_NODELAY, non-blocking (for the back-end's own peeks and pooled recvs;
  // overlapped calls are not affected by it).
  Sync add_stream(SOCKET h, int family, const std::shared_ptr<Port>& port, std::uint64_t key, SocketId& out) {
    BOOL one = TRUE;
    setsockopt(h, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one), sizeof one);
    u_long nb = 1;
    if (ioctlsocket(h, FIONBIO, &nb) != 0) return sync_win32(WSAGetLastError(), "ioctlsocket(FIONBIO)");
    return add_socket(h, SockKind::stream, family, port, key, out);
  }

  // Under mu: every pending op of s completes with aborted: those not in the kernel now, those in the
  // kernel when their cancellation comes back. Returns how many were pending.
  std::size_t abort_all(Sock& s) {
    std::size_t n = 0;
    bool kernel = false;
    if (s.connect_op && !s.connect_op->cancelled) {
      s.connect_op->cancelled = true;
      kernel = true;
      ++n;
    }
    for (auto* q : {&s.rq, &s.sq}) {
      std::deque<IocpOp*> keep;
      while (!q->empty()) {
        IocpOp* o = q->front();
        q->pop_front();
        if (o->issued) {
          if (!o->cancelled) ++n;  // cancelled before: already on its way back
          o->cancelled = true;
          kernel = true;
          keep.push_back(o);
        } else {
          ++n;
          finish(s, o, Status::aborted, ERROR_OPERATION_ABORTED, static_cast<std::uint32_t>(o->op.sent), nullptr);
        }
      }
      q->swap(keep);
    }
    for (IocpOp* o : s.accepts) {
      if (o->cancelled) continue;
      o->cancelled = true;
      kernel = true;
      ++n;
    }
    if (kernel) CancelIoEx(reinterpret_cast<HANDLE>(s.h), nullptr);
    return n;
  }

  void end_session(Sock& s) {
    if (s.session_of == 0) return;
    if (Sock* l = find(s.session_of); l != nullptr && l->sessions.active > 0) --l->sessions.active;
    s.session_of = 0;
  }

  // Under mu: closes s; its ops in the kernel stay alive until their (aborted) completions come back.
  void close_socket(Sock& s, bool abortive) {
    if (abortive) {
      linger l{1, 0};
      setsockopt(s.h, SOL_SOCKET, SO_LINGER, reinterpret_cast<const char*>(&l), sizeof l);
    }
    abort_all(s);
    end_session(s);
    closesocket(s.h);
    socks.erase(s.id);  // ops still issued are orphans now: the callback finds no socket
  }

  // ---------------------------------------------------------------------------------------------------
  // The completion callback (under mu)
  // ---------------------------------------------------------------------------------------------------
  bool completed(IocpOp* o, ULONG_PTR key, DWORD bytes, DWORD err, bool closing, Packet& out) {
    o->issued = false;
    Sock* s = find(o->sock);
    const bool is_accept = o->op.kind == OpKind::accept;
    const bool mine = s != nullptr && (is_accept ? std::find(s->accepts.begin(), s->accepts.end(), o) != s->accepts.end()
                                                 : o->op.kind == OpKind::connect ? s->connect_op == o
                                                 : o->op.kind == OpKind::send   ? !s->sq.empty() && s->sq.front() == o
                                                                                : !s->rq.empty() && s->rq.front() == o);
    if (!mine) {
      // An orphan: its socket was closed (close() marked it cancelled). A receive that raced to success
      // keeps its data; everything else is aborted.
      bool delivered = true;
      if (o->port) key = static_cast<ULONG_PTR>(o->app_key);  // relayed (an accept): the kernel key is internal
      if (o->op.kind == OpKind::recv && !o->op.pool && err == 0 && bytes > 0) {
        o->buf.resize(bytes);
        std::vector<std::uint8_t> d = std::move(o->buf);
        deliver(nullptr, key, o, Status::ok, 0, bytes, &out, 0, &d);
      } else {
        if (o->op.kind == OpKind::send) o->op.account_sent(std::min<DWORD>(bytes, o->chunk));
        const DWORD e = err != 0 ? err : ERROR_OPERATION_ABORTED;
        deliver(nullptr, key, o, Status::aborted, e, o->op.kind == OpKind::send ? static_cast<std::uint32_t>(o->op.sent) : 0, &out);
      }
      delete o;
      return delivered;
    }
    if (closing) o->cancelled = true;  // the port is going away: no further steps
    switch (o->op.kind) {
      case OpKind::accept: {
        if (closing) {
          remove_accept(*s, o);
          finish(*s, o, Status::aborted, err != 0 ? err : ERROR_OPERATION_ABORTED, 0, &out);
          return true;
        }
        const int r = accept_result(*s, o, err, &out);
        if (r >= 0) return r == 1;
        return run_accept(*s, o, &out);
      }
      case OpKind::connect:
        return connect_result(*s, err, &out);
      case OpKind::send: {
        const bool d = send_result(*s, o, bytes, err, &out);
        run_sends(*s);
        return d;
      }
      default: {
        const bool d = recv_result(*s, o, bytes, err, &out);
        run_recvs(*s);
        return d;
      }
    }
  }
};

bool on_kernel_completion(iocp::IoRecord* rec, ULONG_PTR key, DWORD bytes, DWORD error, bool closing, Packet& out) {
  auto* o = static_cast<IocpOp*>(rec);
  std::shared_ptr<Core> core = o->core;  // o may be freed below
  std::lock_guard<std::mutex> g(core->mu);
  return core->completed(o, key, bytes, error, closing, out);
}

constexpr ULONG_PTR kRelayQuit = ~ULONG_PTR{0};

// The relay thread: the listeners' AcceptEx completions, converted (and refused sessions handled, accepts
// re-armed) under the lock, their packets posted to the application's port.
void relay_loop(std::shared_ptr<Core> core) {
  for (;;) {
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    OVERLAPPED* ov = nullptr;
    const BOOL ok = GetQueuedCompletionStatus(core->relay, &bytes, &key, &ov, INFINITE);
    if (ov == nullptr) {
      if (!ok || key == kRelayQuit) return;
      continue;
    }
    auto* o = static_cast<IocpOp*>(reinterpret_cast<iocp::IoRecord*>(ov));
    const DWORD err = iocp::error_of(*ov);
    std::lock_guard<std::mutex> g(core->mu);
    --core->relay_pending;
    const std::shared_ptr<Port> port = o->port;  // o may be freed by completed()
    Packet out;
    try {
      if (core->completed(o, key, bytes, err, port->is_closed(), out)) port->post(out);
    } catch (const std::exception&) {
      // PostQueuedCompletionStatus failed: the packet cannot be delivered (the port is going away)
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// The back-end
// ---------------------------------------------------------------------------------------------------------

class IocpBackend final : public Backend {
 public:
  IocpBackend() : core_(std::make_shared<Core>()) { core_->self = core_; }

  bool start(std::string& why) {
    core_->relay = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
    if (core_->relay == nullptr) {
      why = "CreateIoCompletionPort(relay): " + win32_message(GetLastError());
      return false;
    }
    try {
      relay_thread_ = std::thread(relay_loop, core_);
    } catch (const std::exception& e) {
      why = std::string("cannot start the relay thread: ") + e.what();
      return false;
    }
    core_->index = sockets::register_backend(this);
    return true;
  }

  ~IocpBackend() override {
    sockets::unregister_backend(core_->index);  // first: no take_data may start on a dying object
    shutdown_all();
    if (relay_thread_.joinable()) {
      // The cancelled accepts come back to the relay first (bounded: a record that never comes back leaks).
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      for (;;) {
        {
          std::lock_guard<std::mutex> g(core_->mu);
          if (core_->relay_pending == 0) break;
        }
        if (std::chrono::steady_clock::now() >= until) break;
        Sleep(1);
      }
      PostQueuedCompletionStatus(core_->relay, 0, kRelayQuit, nullptr);
      relay_thread_.join();
    }
    std::lock_guard<std::mutex> g(core_->mu);
    if (core_->relay != nullptr && core_->relay_pending == 0) {
      CloseHandle(core_->relay);  // else late completions still need a valid port: leave it (bounded leak)
      core_->relay = nullptr;
    }
    core_->self.reset();
  }

  const char* name() const noexcept override { return "iocp"; }

  Sync listen(const std::shared_ptr<Port>& port, std::uint64_t key, const std::string& host, std::uint16_t bind_port,
              int backlog, SocketId& out, std::uint16_t& bound_port) override {
    out = 0;
    bound_port = 0;
    if (!port) return sockets::sync_error(Status::invalid, WSAEINVAL, "listen: no port");
    sockaddr_storage ss;
    int len = 0;
    if (!parse_address(host, bind_port, ss, len)) return sockets::sync_error(Status::invalid, WSAEINVAL, "listen: bad host '" + host + "'");
    SOCKET h = new_socket(ss.ss_family);
    if (h == INVALID_SOCKET) return sync_win32(WSAGetLastError(), "listen: WSASocket");
    if (::bind(h, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(h, backlog > 0 ? backlog : SOMAXCONN) != 0) {
      const DWORD e = WSAGetLastError();
      closesocket(h);
      return sync_win32(e, "listen: bind/listen");
    }
    sockaddr_storage bound{};
    int blen = sizeof bound;
    getsockname(h, reinterpret_cast<sockaddr*>(&bound), &blen);
    bound_port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                   : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    std::lock_guard<std::mutex> g(core_->mu);
    if (core_->stopped) {
      closesocket(h);
      return stopped_error();
    }
    Sync r = core_->add_socket(h, SockKind::listener, ss.ss_family, port, key, out);
    if (!r.ok()) closesocket(h);
    return r;
  }

  Sync accept(SocketId listener, std::uint64_t token, std::uint64_t new_key, OpId& op) override {
    op = 0;
    std::lock_guard<std::mutex> g(core_->mu);
    Sock* s = core_->find(listener);
    if (s == nullptr) return missing(listener);
    if (s->kind != SockKind::listener) return sockets::sync_error(Status::invalid, WSAEINVAL, "accept: socket " + std::to_string(listener) + " is not a listener");
    IocpOp* o = core_->new_op(OpKind::accept, token, listener);
    o->op.new_key = new_key;
    o->port = s->port;
    o->app_key = s->key;
    op = o->op.id;
    s->accepts.push_back(o);
    core_->run_accept(*s, o, nullptr);
    return sockets::sync_ok();
  }

  Sync connect(const std::shared_ptr<Port>& port, std::uint64_t key, std::uint64_t token, const std::string& host,
               std::uint16_t remote_port, SocketId& out, OpId& op) override {
    out = 0;
    op = 0;
    if (!port) return sockets::sync_error(Status::invalid, WSAEINVAL, "connect: no port");
    sockaddr_storage ss;
    int len = 0;
    if (!parse_address(host, remote_port, ss, len)) return sockets::sync_error(Status::invalid, WSAEINVAL, "connect: bad host '" + host + "'");
    SOCKET h = new_socket(ss.ss_family);
    if (h == INVALID_SOCKET) return sync_win32(WSAGetLastError(), "connect: WSASocket");
    // ConnectEx needs a bound socket: the wildcard address of the family, any port.
    sockaddr_storage any{};
    any.ss_family = ss.ss_family;
    if (::bind(h, reinterpret_cast<sockaddr*>(&any), len) != 0) {
      const DWORD e = WSAGetLastError();
      closesocket(h);
      return sync_win32(e, "connect: bind");
    }
    std::lock_guard<std::mutex> g(core_->mu);
    if (core_->stopped) {
      closesocket(h);
      return stopped_error();
    }
    if (Sync r = core_->add_stream(h, ss.ss_family, port, key, out); !r.ok()) {
      closesocket(h);
      out = 0;
      return r;
    }
    Sock& s = *core_->find(out);
    IocpOp* o = core_->new_op(OpKind::connect, token, out);
    op = o->op.id;
    s.connect_op = o;
    s.connecting = true;
    DWORD sent = 0;
    iocp::io_issued(*s.port);
    const BOOL ok = winsock().connect_ex(h, reinterpret_cast<sockaddr*>(&ss), len, nullptr, 0, &sent, &o->ov);
    Call c = core_->finish_call(s, ok ? 0 : SOCKET_ERROR, sent, s.skip);
    o->issued = c.pending;
    if (c.pending) return sockets::sync_ok();
    if (c.error != 0 && status_from_win32(c.error, false) == Status::invalid) {  // a bad argument: nothing queued
      s.connect_op = nullptr;
      delete o;
      closesocket(h);
      core_->socks.erase(out);
      out = 0;
      op = 0;
      return sync_win32(c.error, "connect: ConnectEx");
    }
    core_->connect_result(s, c.error, nullptr);  // refused and friends complete through the port
    return sockets::sync_ok();
  }

  Sync recv(SocketId id, std::uint32_t length, std::uint64_t token, OpId& op) override {
    return submit_recv(id, length, nullptr, token, op);
  }

  Sync recv_pooled(SocketId id, std::uint32_t length, const std::shared_ptr<RecvPool>& pool, std::uint64_t token,
                   OpId& op) override {
    op = 0;
    if (!pool) return sockets::sync_error(Status::invalid, WSAEINVAL, "recv: no pool");
    if (length == 0) return sockets::sync_error(Status::invalid, WSAEINVAL, "recv: a pool-backed receive needs a length > 0");
    return submit_recv(id, length, pool, token, op);
  }

  Sync send(SocketId id, const std::uint8_t* data, std::size_t n, std::uint64_t token, bool partial, OpId& op) override {
    op = 0;
    if (Sync r = sockets::check_send_args(data, n); !r.ok()) return r;
    std::lock_guard<std::mutex> g(core_->mu);
    Sock* s = core_->find(id);
    if (s == nullptr) return missing(id);
    if (s->kind != SockKind::stream) return sockets::sync_error(Status::invalid, WSAEINVAL, "send: socket " + std::to_string(id) + " is a listener");
    IocpOp* o = core_->new_op(OpKind::send, token, id);
    o->op.data.assign(data, data + n);
    o->op.partial = partial;
    op = o->op.id;
    s->sq.push_back(o);
    core_->run_sends(*s);
    return sockets::sync_ok();
  }

  Sync shutdown(SocketId id, bool send_dir, bool recv_dir) override {
    std::lock_guard<std::mutex> g(core_->mu);
    Sock* s = core_->find(id);
    if (s == nullptr) return missing(id);
    if (!send_dir && !recv_dir) return sockets::sync_ok();
    const int how = send_dir && recv_dir ? SD_BOTH : send_dir ? SD_SEND : SD_RECEIVE;
    if (::shutdown(s->h, how) != 0) return sync_win32(WSAGetLastError(), "shutdown");
    if (recv_dir && s->kind == SockKind::stream) {
      // Receiving is over here: pending and later receives complete with end of stream (as on Linux,
      // where a local SHUT_RD does that; Windows leaves an overlapped receive pending).
      s->eof = true;
      if (!s->rq.empty() && s->rq.front()->issued) {
        s->rq.front()->as_eof = true;
        CancelIoEx(reinterpret_cast<HANDLE>(s->h), &s->rq.front()->ov);
      } else {
        core_->run_recvs(*s);
      }
    }
    return sockets::sync_ok();
  }

  Sync close(SocketId id, bool abortive) override {
    std::lock_guard<std::mutex> g(core_->mu);
    Sock* s = core_->find(id);
    if (s == nullptr) return missing(id);
    core_->close_socket(*s, abortive);
    return sockets::sync_ok();
  }

  Sync cancel(SocketId id, OpId op, bool& found) override {
    found = false;
    std::lock_guard<std::mutex> g(core_->mu);
    Sock* s = core_->find(id);
    if (s == nullptr) return missing(id);
    if (op == 0) {
      found = core_->abort_all(*s) > 0;
      core_->run_recvs(*s);
      core_->run_sends(*s);
      return sockets::sync_ok();
    }
    auto cancel_one = [&](IocpOp* o) {
      if (o->cancelled) return;  // cancelled before: its aborted packet is on its way; a second cancel finds nothing
      found = true;
      o->cancelled = true;
      CancelIoEx(reinterpret_cast<HANDLE>(s->h), &o->ov);  // ERROR_NOT_FOUND: it raced; its packet is queued
    };
    if (s->connect_op && s->connect_op->op.id == op) {
      cancel_one(s->connect_op);
      return sockets::sync_ok();
    }
    for (IocpOp* o : s->accepts) {
      if (o->op.id == op) {
        cancel_one(o);
        return sockets::sync_ok();
      }
    }
    for (auto* q : {&s->rq, &s->sq}) {
      for (auto it = q->begin(); it != q->end(); ++it) {
        IocpOp* o = *it;
        if (o->op.id != op) continue;
        if (o->issued) {
          cancel_one(o);
        } else {
          found = true;
          q->erase(it);
          core_->finish(*s, o, Status::aborted, ERROR_OPERATION_ABORTED, static_cast<std::uint32_t>(o->op.sent), nullptr);
          core_->run_recvs(*s);  // a cancelled front lets the next one run
          core_->run_sends(*s);
        }
        return sockets::sync_ok();
      }
    }
    return sockets::sync_ok();
  }

  Sync set_buffers(SocketId id, int send_bytes, int recv_bytes) override {
    std::lock_guard<std::mutex> g(core_->mu);
    Sock* s = core_->find(id);
    if (s == nullptr) return missing(id);
    if (send_bytes > 0 && setsockopt(s->h, SOL_SOCKET, SO_SNDBUF, reinterpret_cast<const char*>(&send_bytes), sizeof send_bytes) != 0) {
      return sync_win32(WSAGetLastError(), "setsockopt(SO_SNDBUF)");
    }
    if (recv_bytes > 0 && setsockopt(s->h, SOL_SOCKET, SO_RCVBUF, reinterpret_cast<const char*>(&recv_bytes), sizeof recv_bytes) != 0) {
      return sync_win32(WSAGetLastError(), "setsockopt(SO_RCVBUF)");
    }
    return sockets::sync_ok();
  }

  Sync set_faults(SocketId id, const SocketFaults& f) override {
    std::lock_guard<std::mutex> g(core_->mu);
    Sock* s = core_->find(id);
    if (s == nullptr) return missing(id);
    if (Sync r = sockets::check_faults(f); !r.ok()) return r;
    s->faults.set(f);
    return sockets::sync_ok();
  }

  Sync set_session_limit(SocketId id, std::uint32_t max, const std::vector<std::uint8_t>& message) override {
    if (Sync r = sockets::check_session_limit(message); !r.ok()) return r;
    std::lock_guard<std::mutex> g(core_->mu);
    Sock* s = core_->find(id);
    if (s == nullptr) return missing(id);
    if (s->kind != SockKind::listener) return sockets::sync_error(Status::invalid, WSAEINVAL, "session limit: socket " + std::to_string(id) + " is not a listener");
    s->sessions.max = max;
    s->sessions.message = message;
    return sockets::sync_ok();
  }

  Sync session_stats(SocketId id, SessionStats& out) override {
    std::lock_guard<std::mutex> g(core_->mu);
    Sock* s = core_->find(id);
    if (s == nullptr) return missing(id);
    if (s->kind != SockKind::listener) return sockets::sync_error(Status::invalid, WSAEINVAL, "session stats: socket " + std::to_string(id) + " is not a listener");
    out = s->sessions.stats();
    return sockets::sync_ok();
  }

  bool take_data(OpId op, std::vector<std::uint8_t>& out) override {
    std::lock_guard<std::mutex> g(core_->mu);
    auto it = core_->data.find(op);
    if (it == core_->data.end()) return false;
    out = std::move(it->second);
    core_->data.erase(it);
    return true;
  }

  void shutdown_all() override {
    std::lock_guard<std::mutex> g(core_->mu);
    core_->stopped = true;
    while (!core_->socks.empty()) core_->close_socket(*core_->socks.begin()->second, false);
  }

 private:
  static Sync stopped_error() { return sockets::sync_error(Status::invalid, 0, "the iocp back-end was shut down"); }
  Sync missing(SocketId id) const { return core_->stopped ? stopped_error() : sockets::sync_unknown_socket(id); }

  Sync submit_recv(SocketId id, std::uint32_t length, const std::shared_ptr<RecvPool>& pool, std::uint64_t token, OpId& op) {
    op = 0;
    std::lock_guard<std::mutex> g(core_->mu);
    Sock* s = core_->find(id);
    if (s == nullptr) return missing(id);
    if (s->kind != SockKind::stream) return sockets::sync_error(Status::invalid, WSAEINVAL, "recv: socket " + std::to_string(id) + " is a listener");
    if (pool && !pool->bind(this)) return sockets::sync_error(Status::invalid, WSAEINVAL, "recv: the pool serves receives of another back-end");
    IocpOp* o = core_->new_op(length == 0 ? OpKind::probe : OpKind::recv, token, id);
    o->op.length = length;
    o->op.pool = pool;
    op = o->op.id;
    s->rq.push_back(o);
    core_->run_recvs(*s);
    return sockets::sync_ok();
  }

  std::shared_ptr<Core> core_;
  std::thread relay_thread_;
};

}  // namespace

std::unique_ptr<Backend> make_iocp_backend(std::string& why) {
  const Winsock& w = winsock();
  if (!w.ok) {
    why = w.why;
    return nullptr;
  }
  auto b = std::make_unique<IocpBackend>();
  if (!b->start(why)) return nullptr;
  return b;
}

std::string iocp_backend_note() {
  const Winsock& w = winsock();
  if (!w.ok) return "iocp sockets unavailable: " + w.why;
  return "iocp sockets (AcceptEx, ConnectEx, WSARecv, WSASend, CancelIoEx on the kernel port); " + w.skip_note;
}

}  // namespace cpspec
