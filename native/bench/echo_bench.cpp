// cpspec-bench-echo: TCP echo servers on 127.0.0.1 driven by one load client, all in the same run.
//
// Servers under test (each on 127.0.0.1, an ephemeral port):
//   epoll     cpspec's epoll Backend + a Port, N worker threads dequeuing completions (dequeue_many; N = the CPUs
//             the servers get, at most 4: see Placement),
//             proactor style as in the seeds' IOCP servers: recv completes -> send the same bytes -> send
//             completes -> recv again. Runs inside this process, on its own threads (N workers + the
//             back-end's epoll thread).
//   io_uring  the same server on make_uring_backend(), when that back-end is linked in and can run here.
//             make_uring_backend is declared weak below, so this file links whether or not the uring sources
//             exist; its row says "not built" when the symbol is absent.
//   Node net  a `net` echo server in a separate Node process (bench/echo-node-server.mjs, started by
//             bench/echo.ts, which passes its port as --node-port).
//
// The load client (this file, 1 thread, its own epoll loop) is the same for every server: for 1, 64 and 1000
// connections x 64 B and 4 KiB messages, every connection does request -> response round trips with one
// message outstanding, checking that every echoed byte is exact. After connecting (in batches, each batch
// confirmed by one round trip) and a warm-up, round trips are counted for a fixed duration; latency is per
// round trip (send of the first byte -> last byte received). Servers are measured interleaved point by point
// and, with --reps, run by run, so a drift in machine load hits all of them alike. msgs/s = completed round trips per second; MB/s = the
// payload one way (msgs/s x size). Ratios: "x/node" > 1 = cpspec better (throughput: x / node; latency:
// node / x). Target (reported, never asserted): both back-ends ahead of Node's net at every point, where
// "ahead" = more msgs/s and a lower p99. Exit status 1 only when a correctness check fails (wrong bytes, a
// server dropping a connection) or no server could be measured.
//
// Placement (unless --no-pin, and with at least 2 CPUs): the load client thread on the first CPU, every
// server on the other CPUs -- both in-process servers' threads and every thread of the Node process (its pid
// comes as --node-pid) -- and the cpspec servers use one port worker per server CPU (at most 4). If the Node
// server cannot be pinned, nothing is.
//
// usage: cpspec-bench-echo [--json] [--reps N] [--quick] [--node-port N] [--node-pid N] [--no-pin] [--seconds S]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <dirent.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "backend.h"
#include "bench_cli.h"
#include "port.h"

// The io_uring back-end (native/uring) may not be built. cpspec_core is a STATIC library and a weak reference
// never pulls a member out of an archive, so: when native/uring/uring_backend.cpp exists (CMakeLists.txt globs
// native/uring/*.cpp into cpspec_core) the reference is strong, which links the back-end in; otherwise
// make_uring_backend is declared weak, so this links without it and the io_uring column says "not built".
// -DCPSPEC_HAVE_URING=0/1 overrides the guess.
#ifndef CPSPEC_HAVE_URING
#if __has_include("../uring/uring_backend.cpp")
#define CPSPEC_HAVE_URING 1
#else
#define CPSPEC_HAVE_URING 0
#endif
#endif
#if !CPSPEC_HAVE_URING
namespace cpspec {
std::unique_ptr<Backend> make_uring_backend(std::string& why) __attribute__((weak));
}
#endif

namespace {

using namespace cpspec;
using Clock = std::chrono::steady_clock;

const char* const kName = "cpspec-bench-echo";
const char* const kUsage =
    "usage: cpspec-bench-echo [--json] [--reps N] [--quick] [--node-port N] [--node-pid N] [--no-pin]\n"
    "                         [--only epoll|uring|node] [--conns N] [--seconds S]\n"
    "  --json         print the results as one JSON object instead of a table\n"
    "  --reps N       runs per measurement, best msgs/s reported (default 1; 1..100)\n"
    "  --quick        short runs (a smoke test: numbers are not meaningful)\n"
    "  --node-port N  the port of a Node `net` echo server on 127.0.0.1 (bench/echo.ts starts one);\n"
    "                 without it the Node column is not measured\n"
    "  --node-pid N   that server's process id, so it is pinned like the cpspec servers (see --no-pin)\n"
    "  --only NAME    measure only that server (epoll, uring or node; for profiling)\n"
    "  --conns N      measure only N connections (for profiling)\n"
    "  --no-pin       do not pin: by default the client runs on the first CPU and every server on the others\n"
    "  --seconds S    measured duration per point (default 2; --quick: 0.25)\n";

double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// ---------------------------------------------------------------------------------------------------------
// The cpspec echo server: one listener, kAccepts accepts kept pending, 2 workers on one Port.
// Tokens: low 2 bits = operation kind, the rest = the socket id (so no per-connection table is needed:
// every connection has exactly one operation outstanding, a recv or a send).
// ---------------------------------------------------------------------------------------------------------
class CpspecEchoServer {
 public:
  explicit CpspecEchoServer(unsigned workers) : workers_n_(std::max(1u, workers)) {}
  static constexpr int kAccepts = 16;
  static constexpr std::uint32_t kRecvSize = 8192;
  enum : std::uint64_t { kAccept = 0, kRecv = 1, kSend = 2 };
  static constexpr std::uint64_t kListenKey = 1;
  static constexpr std::uint64_t kConnKey = 2;

  ~CpspecEchoServer() { stop(); }

  // Takes a started back-end; returns false (why set) when it cannot listen.
  bool start(std::unique_ptr<Backend> be, std::string& why) {
    be_ = std::move(be);
    port_ = Port::create(workers_n_);
    std::uint16_t bound = 0;
    Sync r = be_->listen(port_, kListenKey, "127.0.0.1", 0, 4096, listener_, bound);
    if (!r.ok()) {
      why = "listen: " + r.message;
      return false;
    }
    for (int i = 0; i < kAccepts; ++i) {
      OpId op = 0;
      r = be_->accept(listener_, kAccept, kConnKey, op);
      if (!r.ok()) {
        why = "accept: " + r.message;
        return false;
      }
    }
    for (unsigned i = 0; i < workers_n_; ++i) workers_.emplace_back([this] { work(); });
    port_number_ = bound;
    return true;
  }

  void stop() {
    if (!be_) return;
    stopping_.store(true);
    be_->shutdown_all();  // every pending op completes with aborted
    port_->close();       // wakes the workers
    for (auto& t : workers_) t.join();
    workers_.clear();
    be_.reset();
  }

  std::uint16_t port() const { return port_number_; }
  // Operations the server could not issue (a broken back-end); reported, not expected.
  std::uint64_t errors() const { return errors_.load(); }

 private:
  void arm_recv(SocketId s) {
    OpId op = 0;
    if (!be_->recv(s, kRecvSize, (s << 2) | kRecv, op).ok()) fail(s);
  }

  void fail(SocketId s) {
    if (!stopping_.load(std::memory_order_relaxed)) errors_.fetch_add(1);
    be_->close(s, false);
  }

  void handle(const Packet& p, std::vector<std::uint8_t>& buf) {
    const SocketId s = p.token >> 2;
    switch (p.token & 3) {
      case kAccept: {
        if (p.status == Status::aborted || stopping_.load(std::memory_order_relaxed)) return;
        if (p.status == Status::ok) arm_recv(p.socket);
        OpId op = 0;
        if (!be_->accept(listener_, kAccept, kConnKey, op).ok() && !stopping_.load()) errors_.fetch_add(1);
        return;
      }
      case kRecv: {
        if (p.status != Status::ok || p.bytes == 0) {  // eof (the client is done), reset, aborted
          be_->close(s, false);
          return;
        }
        if (!be_->take_data(p.op, buf)) {
          fail(s);
          return;
        }
        OpId op = 0;
        if (!be_->send(s, buf.data(), buf.size(), (s << 2) | kSend, false, op).ok()) fail(s);
        return;
      }
      case kSend:
        if (p.status == Status::ok) {
          arm_recv(s);
        } else {
          be_->close(s, false);
        }
        return;
      default:
        return;
    }
  }

  void work() {
    Packet pk[64];
    std::vector<std::uint8_t> buf;
    for (;;) {
      std::size_t n = 0;
      const DequeueKind k = port_->dequeue_many(pk, 64, n, kInfinite);
      if (k == DequeueKind::closed) return;
      for (std::size_t i = 0; i < n; ++i) handle(pk[i], buf);
    }
  }

  unsigned workers_n_ = 1;
  std::unique_ptr<Backend> be_;
  std::shared_ptr<Port> port_;
  SocketId listener_ = 0;
  std::uint16_t port_number_ = 0;
  std::vector<std::thread> workers_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> errors_{0};
};

// ---------------------------------------------------------------------------------------------------------
// The load client.
// ---------------------------------------------------------------------------------------------------------
struct Result {
  bool ran = false;
  std::string error;  // non-empty: the point failed (correctness or connection trouble)
  std::uint64_t msgs = 0;
  double seconds = 0;
  double msgs_per_s = 0;
  double mb_per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
};

class Client {
 public:
  Client(std::uint16_t port, int conns, std::size_t size) : port_(port), size_(size), conns_(conns) {
    // The payload source: message (conn c, seq q) is pattern_[off .. off+size) with off = (c*37 + q) % 251,
    // so consecutive messages of one connection and messages of neighbouring connections all differ.
    pattern_.resize(size + 256);
    for (std::size_t i = 0; i < pattern_.size(); ++i) pattern_[i] = static_cast<std::uint8_t>((i * 131 + (i >> 8) * 7 + 17) & 0xff);
    rbuf_.resize(std::max<std::size_t>(size, 65536));
  }
  ~Client() {
    for (auto& c : conns_)
      if (c.fd >= 0) ::close(c.fd);
    if (ep_ >= 0) ::close(ep_);
  }

  Result run(double warm_s, double measure_s) {
    Result r;
    r.ran = true;
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) return err(r, std::string("epoll_create1: ") + std::strerror(errno));
    // Connect in batches; each batch does one round trip per connection before the next batch connects,
    // so a server's listen backlog never overflows (a dropped SYN would stall a connect for a second).
    constexpr std::size_t kBatch = 100;
    for (std::size_t first = 0; first < conns_.size(); first += kBatch) {
      const std::size_t last = std::min(conns_.size(), first + kBatch);
      for (std::size_t i = first; i < last; ++i) {
        if (!connect_one(i)) return err(r, error_);
        if (!start_message(i)) return err(r, error_);
      }
      const auto deadline = Clock::now() + std::chrono::seconds(10);
      for (;;) {
        bool all = true;
        for (std::size_t i = first; i < last && all; ++i) all = conns_[i].seq > 0;
        if (all) break;
        if (Clock::now() > deadline) return err(r, "connections did not complete a first round trip within 10 s");
        if (!pump(Clock::now() + std::chrono::milliseconds(20))) return err(r, error_);
      }
    }
    if (!pump(Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warm_s)))) return err(r, error_);
    recording_ = true;
    start_ = Clock::now();
    lat_.clear();
    lat_.reserve(1 << 18);
    const auto end = start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(measure_s));
    if (!pump(end)) return err(r, error_);
    r.seconds = secs(Clock::now() - start_);
    recording_ = false;
    r.msgs = lat_.size();
    r.msgs_per_s = r.seconds > 0 ? static_cast<double>(r.msgs) / r.seconds : 0;
    r.mb_per_s = r.msgs_per_s * static_cast<double>(size_) / 1e6;
    if (!lat_.empty()) {
      auto pct = [&](double q) {
        const std::size_t k = std::min(lat_.size() - 1, static_cast<std::size_t>(q * static_cast<double>(lat_.size())));
        std::nth_element(lat_.begin(), lat_.begin() + static_cast<std::ptrdiff_t>(k), lat_.end());
        return static_cast<double>(lat_[k]) / 1e3;
      };
      r.p50_us = pct(0.50);
      r.p99_us = pct(0.99);
    } else {
      r.error = "no round trip completed";
    }
    return r;
  }

 private:
  struct Conn {
    int fd = -1;
    std::uint32_t seq = 0;   // completed round trips
    std::size_t sent = 0;    // bytes of the current message written
    std::size_t got = 0;     // bytes of the current echo received and checked
    bool want_out = false;   // EPOLLOUT registered (a short write is pending)
    Clock::time_point t0;    // when the current message was started
  };

  Result& err(Result& r, const std::string& e) {
    r.error = e.empty() ? "unknown error" : e;
    return r;
  }
  bool fail(std::string e) {
    if (error_.empty()) error_ = std::move(e);
    return false;
  }

  const std::uint8_t* message(std::size_t i) const { return pattern_.data() + (i * 37 + conns_[i].seq) % 251; }

  bool connect_one(std::size_t i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(std::string("socket: ") + std::strerror(errno));
    conns_[i].fd = fd;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // 127.0.0.1 only
    // A blocking connect: on loopback it returns as soon as the handshake is done (the backlog holds it).
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return fail(std::string("connect: ") + std::strerror(errno));
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) return fail(std::string("epoll_ctl: ") + std::strerror(errno));
    return true;
  }

  bool set_out(Conn& c, std::size_t i, bool on) {
    if (c.want_out == on) return true;
    c.want_out = on;
    epoll_event ev{};
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
    ev.data.u64 = i;
    if (::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev) != 0) return fail(std::string("epoll_ctl: ") + std::strerror(errno));
    return true;
  }

  bool write_some(std::size_t i) {
    Conn& c = conns_[i];
    const std::uint8_t* m = message(i);
    while (c.sent < size_) {
      const ssize_t n = ::send(c.fd, m + c.sent, size_ - c.sent, MSG_NOSIGNAL);
      if (n > 0) {
        c.sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return set_out(c, i, true);
      return fail(std::string("send: ") + std::strerror(errno));
    }
    return set_out(c, i, false);
  }

  bool start_message(std::size_t i) {
    Conn& c = conns_[i];
    c.sent = 0;
    c.got = 0;
    c.t0 = Clock::now();
    return write_some(i);
  }

  bool read_some(std::size_t i) {
    Conn& c = conns_[i];
    for (;;) {
      // Never read past the current echo: extra bytes would be a server bug, caught by the next check.
      const ssize_t n = ::recv(c.fd, rbuf_.data(), size_ - c.got, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        return fail(std::string("recv: ") + std::strerror(errno));
      }
      if (n == 0) return fail("the server closed a connection");
      if (std::memcmp(rbuf_.data(), message(i) + c.got, static_cast<std::size_t>(n)) != 0) {
        return fail("echoed bytes differ from the bytes sent (connection " + std::to_string(i) + ", message " +
                    std::to_string(c.seq) + ")");
      }
      c.got += static_cast<std::size_t>(n);
      if (c.got < size_) continue;
      if (c.sent < size_) return fail("echo received before the message was fully sent");
      const auto now = Clock::now();
      if (recording_ && c.t0 >= start_) lat_.push_back(static_cast<std::uint32_t>(
          std::min<std::int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.t0).count(), 0xFFFFFFFF)));
      ++c.seq;
      return start_message(i);
    }
  }

  // Runs the event loop until `until`; false on an error (error_).
  bool pump(Clock::time_point until) {
    epoll_event evs[256];
    for (;;) {
      const auto now = Clock::now();
      if (now >= until) return true;
      const int wait_ms = static_cast<int>(std::min<std::int64_t>(
          10, std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1));
      const int n = ::epoll_wait(ep_, evs, 256, wait_ms);
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail(std::string("epoll_wait: ") + std::strerror(errno));
      }
      for (int k = 0; k < n; ++k) {
        const std::size_t i = evs[k].data.u64;
        if ((evs[k].events & EPOLLOUT) && conns_[i].sent < size_ && !write_some(i)) return false;
        if ((evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !read_some(i)) return false;
      }
    }
  }

  std::uint16_t port_;
  std::size_t size_;
  std::vector<Conn> conns_;
  std::vector<std::uint8_t> pattern_;
  std::vector<std::uint8_t> rbuf_;
  std::vector<std::uint32_t> lat_;  // ns per round trip, measured phase only
  int ep_ = -1;
  bool recording_ = false;
  Clock::time_point start_;
  std::string error_;
};

// ---------------------------------------------------------------------------------------------------------
// Servers, points, output.
// ---------------------------------------------------------------------------------------------------------
struct Server {
  Server(const char* i, const char* n) : id(i), name(n) {}
  const char* id;    // json key
  const char* name;  // column title
  bool available = false;
  std::string why;   // when not available
  std::uint16_t port = 0;
  std::unique_ptr<CpspecEchoServer> native;  // null for Node
};

struct Point {
  int conns;
  std::size_t size;
  Result r[3];  // epoll, uring, node
};

std::string size_name(std::size_t s) { return s >= 1024 ? std::to_string(s / 1024) + " KiB" : std::to_string(s) + " B"; }

// > 1 = cpspec better. Throughput: x / node; latency: node / x. 0 = not comparable.
double ratio_thr(const Result& x, const Result& node) {
  return x.error.empty() && node.error.empty() && x.ran && node.ran && node.msgs_per_s > 0 ? x.msgs_per_s / node.msgs_per_s : 0;
}
double ratio_lat(double x, double node, const Result& a, const Result& b) {
  return a.error.empty() && b.error.empty() && a.ran && b.ran && x > 0 ? node / x : 0;
}
const char* verdict(const Result& x, const Result& node) {
  if (!x.ran || !node.ran || !x.error.empty() || !node.error.empty()) return "n/a";
  return ratio_thr(x, node) > 1 && ratio_lat(x.p99_us, node.p99_us, x, node) > 1 ? "PASS" : "MISS";
}

void json_string(const std::string& s) {
  std::putchar('"');
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      std::printf("\\%c", ch);
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      std::printf("\\u%04x", ch);
    } else {
      std::putchar(ch);
    }
  }
  std::putchar('"');
}

void json_result(const Result& r) {
  if (!r.ran) {
    std::printf("null");
    return;
  }
  std::printf("{\"messages\":%llu,\"seconds\":%.4f,\"msgsPerSec\":%.6g,\"mbPerSec\":%.6g,\"p50Us\":%.6g,\"p99Us\":%.6g,\"error\":",
              static_cast<unsigned long long>(r.msgs), r.seconds, r.msgs_per_s, r.mb_per_s, r.p50_us, r.p99_us);
  if (r.error.empty()) {
    std::printf("null");
  } else {
    json_string(r.error);
  }
  std::printf("}");
}

std::string fmt_rate(const Result& r) {
  char b[64];
  if (!r.ran) return "-";
  if (r.error.rfind("skipped", 0) == 0) return "skipped";
  if (!r.error.empty()) return "FAILED";
  if (r.msgs_per_s >= 1e6) {
    std::snprintf(b, sizeof b, "%.2fM", r.msgs_per_s / 1e6);
  } else {
    std::snprintf(b, sizeof b, "%.1fk", r.msgs_per_s / 1e3);
  }
  return b;
}
std::string fmt_mb(const Result& r) {
  char b[64];
  if (!r.ran || !r.error.empty()) return "-";
  std::snprintf(b, sizeof b, "%.1f", r.mb_per_s);
  return b;
}
std::string fmt_us(const Result& r, double v) {
  char b[64];
  if (!r.ran || !r.error.empty()) return "-";
  std::snprintf(b, sizeof b, v >= 1000 ? "%.0f" : "%.1f", v);
  return b;
}
std::string fmt_x(double x) {
  char b[64];
  if (x <= 0) return "-";
  std::snprintf(b, sizeof b, "%.2fx", x);
  return b;
}

// ---------------------------------------------------------------------------------------------------------
// CPU placement, the same for every server (like with like): the load client gets the first CPU this
// process may use, every server the others -- the in-process servers' threads (back-end thread + workers)
// and every thread of the Node process alike. Without it the client shares its core with the in-process
// servers' threads (but not with the Node process's), and the scheduler's choices decide the numbers.
// Fewer than 2 CPUs, or --no-pin: nothing is pinned.
// ---------------------------------------------------------------------------------------------------------
struct Placement {
  bool pinned = false;
  cpu_set_t client{};
  cpu_set_t servers{};
  int client_cpu = -1;
  unsigned server_cpus = 1;  // CPUs the servers may use (also: the native servers' worker count)
  std::string what;          // a description for the report
};

std::string cpu_list(const cpu_set_t& set) {
  std::string out;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &set)) continue;
    int e = c;
    while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, &set)) ++e;
    if (!out.empty()) out += ",";
    out += e == c ? std::to_string(c) : std::to_string(c) + "-" + std::to_string(e);
    c = e;
  }
  return out;
}

Placement plan_placement(bool want) {
  Placement pl;
  cpu_set_t all;
  CPU_ZERO(&all);
  if (::sched_getaffinity(0, sizeof all, &all) != 0) {
    pl.what = "not pinned (sched_getaffinity failed)";
    return pl;
  }
  const int n = CPU_COUNT(&all);
  pl.server_cpus = static_cast<unsigned>(std::max(1, n - (n >= 2 ? 1 : 0)));
  if (!want || n < 2) {
    pl.what = want ? "not pinned (fewer than 2 CPUs)" : "not pinned (--no-pin)";
    if (n >= 1) pl.server_cpus = static_cast<unsigned>(n);
    return pl;
  }
  CPU_ZERO(&pl.client);
  CPU_ZERO(&pl.servers);
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &all)) continue;
    if (pl.client_cpu < 0) {
      pl.client_cpu = c;
      CPU_SET(c, &pl.client);
    } else {
      CPU_SET(c, &pl.servers);
    }
  }
  pl.pinned = true;
  pl.what = "client on CPU " + std::to_string(pl.client_cpu) + ", every server on CPU " + cpu_list(pl.servers);
  return pl;
}

// Pins the calling thread (threads it creates later inherit the mask).
bool pin_this_thread(const cpu_set_t& set) { return ::sched_setaffinity(0, sizeof set, &set) == 0; }

// Pins every thread of process pid; false if any could not be pinned.
bool pin_process(int pid, const cpu_set_t& set) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return false;
  bool ok = true;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    const int tid = std::atoi(e->d_name);
    if (tid <= 0) continue;
    ++n;
    if (::sched_setaffinity(tid, sizeof set, &set) != 0) ok = false;
  }
  ::closedir(d);
  return ok && n > 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Our own options first; the rest go to the shared parser.
  int node_port = 0;
  int node_pid = 0;
  bool pin = true;
  std::string only;    // measure only this server (epoll, uring, node)
  int only_conns = 0;  // only this connection count
  double seconds = -1;
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--node-port" && i + 1 < argc) {
      node_port = std::atoi(argv[++i]);
      if (node_port <= 0 || node_port > 65535) {
        std::fprintf(stderr, "%s: bad --node-port '%s'\n%s", kName, argv[i], kUsage);
        return 2;
      }
    } else if (a == "--node-pid" && i + 1 < argc) {
      node_pid = std::atoi(argv[++i]);
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (a == "--conns" && i + 1 < argc) {
      only_conns = std::atoi(argv[++i]);
    } else if (a == "--no-pin") {
      pin = false;
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
      if (!(seconds > 0 && seconds <= 30)) {
        std::fprintf(stderr, "%s: bad --seconds '%s' (0 < S <= 30)\n%s", kName, argv[i], kUsage);
        return 2;
      }
    } else {
      rest.push_back(argv[i]);
    }
  }
  bench::Options opts;
  if (int rc = bench::parse_options(static_cast<int>(rest.size()), rest.data(), kName, kUsage, 1, opts); rc >= 0) return rc;
  // Started by bench/echo.ts: do not outlive it if it is killed hard (its Node server goes with it too).
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  const bool json = opts.json;
  const int reps = opts.reps;
  const double measure_s = seconds > 0 ? seconds : opts.quick ? 0.25 : 2.0;
  const double warm_s = opts.quick ? 0.05 : 0.3;
  const std::vector<int> conn_counts = only_conns > 0 ? std::vector<int>{only_conns} : std::vector<int>{1, 64, 1000};
  const std::vector<std::size_t> sizes = {64, 4096};
  {
    // Per point and server: connect (~0.5 s at worst for 1000) + warm-up + measurement.
    const double est = static_cast<double>(reps * conn_counts.size() * sizes.size() * 3) * (warm_s + measure_s + 0.6);
    bench::start_watchdog(kName, 30 + static_cast<int>(est * 1.5));
  }
  auto note = [&](const char* fmt, auto... args) {
    if (!json) std::fprintf(stderr, fmt, args...);
  };

  // File descriptors: the client's sockets plus, for the in-process servers, theirs (and a margin for
  // sockets of the previous point still closing).
  std::string fd_note;
  bool big_ok = true;
  {
    const rlim_t need = 4096;
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need) {
      rlimit want = rl;
      want.rlim_cur = rl.rlim_max == RLIM_INFINITY ? need : std::min<rlim_t>(need, rl.rlim_max);
      if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
    }
    if (rl.rlim_cur < 2300) {
      big_ok = false;
      fd_note = "RLIMIT_NOFILE is " + std::to_string(rl.rlim_cur) + " (hard limit " +
                (rl.rlim_max == RLIM_INFINITY ? std::string("unlimited") : std::to_string(rl.rlim_max)) +
                "), 1000 connections need about 2300: those points are skipped (raise it with ulimit -n 4096)";
      std::fprintf(stderr, "%s: %s\n", kName, fd_note.c_str());
    }
  }

  // Placement: the in-process servers' threads inherit the server CPUs from this thread; then this thread
  // (the load client) moves to its own CPU.
  Placement place = plan_placement(pin);
  if (place.pinned && !pin_this_thread(place.servers)) {
    place.pinned = false;
    place.what = "not pinned (sched_setaffinity failed)";
  }
  const unsigned workers = std::min(4u, place.server_cpus);
  Server servers[3] = {Server("epoll", "epoll"), Server("uring", "io_uring"), Server("node", "Node net")};
  {
    std::string why;
    auto be = make_epoll_backend(why);
    if (be) {
      servers[0].native = std::make_unique<CpspecEchoServer>(workers);
      if (servers[0].native->start(std::move(be), why)) {
        servers[0].available = true;
        servers[0].port = servers[0].native->port();
      }
    }
    if (!servers[0].available) servers[0].why = "epoll back-end unavailable: " + why;
  }
  using Factory = std::unique_ptr<Backend> (*)(std::string&);
  volatile Factory uring_factory = &make_uring_backend;  // null when the weak symbol is absent
  if (uring_factory == nullptr) {
    servers[1].why = "io_uring back-end not built";
  } else {
    std::string why;
    auto be = uring_factory(why);
    if (be) {
      servers[1].native = std::make_unique<CpspecEchoServer>(workers);
      if (servers[1].native->start(std::move(be), why)) {
        servers[1].available = true;
        servers[1].port = servers[1].native->port();
      }
    }
    if (!servers[1].available) servers[1].why = "io_uring back-end unavailable: " + (why.empty() ? std::string("no reason given") : why);
  }
  if (node_port > 0) {
    servers[2].available = true;
    servers[2].port = static_cast<std::uint16_t>(node_port);
  } else {
    servers[2].why = "no --node-port given (run through bench/echo.ts)";
  }
  if (place.pinned) {
    if (servers[2].available && !(node_pid > 0 && pin_process(node_pid, place.servers))) {
      // The Node server cannot be placed like the others: place nobody rather than compare unlike things.
      cpu_set_t all;
      CPU_ZERO(&all);
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &place.client) || CPU_ISSET(c, &place.servers)) CPU_SET(c, &all);
      for (auto& s : servers) s.native.reset();  // restarted below, unpinned
      place.pinned = false;
      place.what = node_pid > 0 ? "not pinned (cannot pin the Node server's threads)" : "not pinned (no --node-pid)";
      pin_this_thread(all);
      for (int si = 0; si < 2; ++si) {
        if (!servers[si].available) continue;
        std::string why;
        auto be = si == 0 ? make_epoll_backend(why) : make_uring_backend(why);
        servers[si].available = false;
        if (be) {
          servers[si].native = std::make_unique<CpspecEchoServer>(workers);
          if (servers[si].native->start(std::move(be), why)) {
            servers[si].available = true;
            servers[si].port = servers[si].native->port();
          }
        }
        if (!servers[si].available) servers[si].why = "restart failed: " + why;
      }
    } else if (!pin_this_thread(place.client)) {
      place.what += " (the client could not be pinned)";
    }
  }
  note("%s: placement: %s; %u worker thread(s) per cpspec server\n", kName, place.what.c_str(), workers);
  for (const Server& s : servers)
    if (!s.available) note("%s: %s: %s\n", kName, s.name, s.why.c_str());

  const auto t_start = Clock::now();
  std::vector<Point> points;
  bool correct = true;
  int measured = 0;
  for (int conns : conn_counts) {
    for (std::size_t size : sizes) {
      Point pt{conns, size, {}};
      // Repetitions are interleaved (rep 1 of every server, then rep 2, ...), so a drift in the machine's
      // load hits every server alike; the best run of each is kept.
      bool run_it[3] = {false, false, false};
      bool failed[3] = {false, false, false};
      for (int si = 0; si < 3; ++si) {
        if (!servers[si].available) continue;
        if (!only.empty() && only != servers[si].id) continue;
        if (conns >= 1000 && !big_ok) {
          pt.r[si].ran = true;
          pt.r[si].error = "skipped: RLIMIT_NOFILE too low";
          continue;
        }
        run_it[si] = true;
      }
      for (int rep = 0; rep < reps; ++rep) {
        for (int si = 0; si < 3; ++si) {
          if (!run_it[si] || failed[si]) continue;
          note("  %-8s %4d conn x %-6s (run %d of %d) ...\n", servers[si].name, conns, size_name(size).c_str(), rep + 1, reps);
          Result r;
          {
            Client c(servers[si].port, conns, size);
            r = c.run(warm_s, measure_s);
          }  // the client's sockets close here
          std::this_thread::sleep_for(std::chrono::milliseconds(conns >= 1000 ? 150 : 20));  // let the server close its side
          Result& best = pt.r[si];
          if (!r.error.empty()) {
            best = r;
            failed[si] = true;
            continue;
          }
          if (!best.ran || r.msgs_per_s > best.msgs_per_s) best = r;
        }
      }
      for (int si = 0; si < 3; ++si) {
        if (!run_it[si]) continue;
        if (failed[si]) {
          correct = false;
          std::fprintf(stderr, "%s: %s, %d conn x %s: %s\n", kName, servers[si].name, conns, size_name(size).c_str(), pt.r[si].error.c_str());
        } else {
          ++measured;
        }
      }
      points.push_back(std::move(pt));
    }
  }
  const double elapsed = secs(Clock::now() - t_start);
  std::uint64_t server_errors[2] = {0, 0};
  for (int si = 0; si < 2; ++si) {
    if (servers[si].native) {
      servers[si].native->stop();
      server_errors[si] = servers[si].native->errors();
      if (server_errors[si] != 0) {
        correct = false;
        std::fprintf(stderr, "%s: the %s server failed to issue %llu operations\n", kName, servers[si].name,
                     static_cast<unsigned long long>(server_errors[si]));
      }
    }
  }

  // Target: both back-ends ahead of Node's net (more msgs/s, lower p99) at every point.
  bool all_pass = servers[0].available && servers[1].available && servers[2].available;
  for (const Point& p : points)
    for (int si = 0; si < 2; ++si)
      if (std::string_view(verdict(p.r[si], p.r[2])) != "PASS") all_pass = false;
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());

  if (json) {
    std::printf("{\"benchmark\":\"echo\",\"aggregate\":\"best\",\"reps\":%d,\"quick\":%s,\"hardwareThreads\":%u,"
                "\"measureSeconds\":%.3f,\"warmupSeconds\":%.3f,\"seconds\":%.3f,\"correct\":%s,",
                reps, opts.quick ? "true" : "false", hw, measure_s, warm_s, elapsed, correct ? "true" : "false");
    std::printf("\"setup\":\"one load client thread in this process; epoll and io_uring servers in this process (%u worker(s) "
                "each + the back-end's thread); Node net server in a separate process\",\"workers\":%u,\"placement\":",
                workers, workers);
    json_string(place.what);
    std::printf(",");
    std::printf("\"fdLimitNote\":");
    if (fd_note.empty()) {
      std::printf("null");
    } else {
      json_string(fd_note);
    }
    std::printf(",\"servers\":{");
    for (int si = 0; si < 3; ++si) {
      std::printf("%s\"%s\":{\"available\":%s,\"why\":", si ? "," : "", servers[si].id, servers[si].available ? "true" : "false");
      if (servers[si].available) {
        std::printf("null");
      } else {
        json_string(servers[si].why);
      }
      std::printf(",\"port\":%u", servers[si].port);
      if (si < 2) std::printf(",\"serverErrors\":%llu", static_cast<unsigned long long>(server_errors[si]));
      std::printf("}");
    }
    std::printf("},\"points\":[");
    for (std::size_t i = 0; i < points.size(); ++i) {
      const Point& p = points[i];
      std::printf("%s{\"connections\":%d,\"size\":%zu", i ? "," : "", p.conns, p.size);
      for (int si = 0; si < 3; ++si) {
        std::printf(",\"%s\":", servers[si].id);
        json_result(p.r[si]);
      }
      for (int si = 0; si < 2; ++si) {
        const Result& x = p.r[si];
        const Result& n = p.r[2];
        auto num = [](double v) {
          if (v > 0) {
            std::printf("%.6g", v);
          } else {
            std::printf("null");
          }
        };
        std::printf(",\"%sVsNode\":{\"throughput\":", servers[si].id);
        num(ratio_thr(x, n));
        std::printf(",\"p50\":");
        num(ratio_lat(x.p50_us, n.p50_us, x, n));
        std::printf(",\"p99\":");
        num(ratio_lat(x.p99_us, n.p99_us, x, n));
        std::printf(",\"target\":\"%s\"}", verdict(x, n));
      }
      std::printf("}");
    }
    std::printf("],\"target\":{\"what\":\"both back-ends ahead of Node's net (more msgs/s and lower p99) at every point\","
                "\"result\":\"%s\"}}\n", all_pass ? "PASS" : "MISS");
  } else {
    std::printf("cpspec echo benchmark: request -> echo round trips on 127.0.0.1, one message outstanding per connection,\n"
                "every echoed byte checked. One load client thread (in this process) drives every server; the epoll and\n"
                "io_uring servers run in this process on their own threads (%u port worker(s) + the back-end's thread), the\n"
                "Node net server in a separate process. %u hardware threads; placement: %s.\n"
                "%.2f s measured per point after %.2f s warm-up, best of %d. Ratios: > 1 = cpspec better (msgs/s: x/node;\n"
                "latency: node/x).\n",
                workers, hw, place.what.c_str(), measure_s, warm_s, reps);
    for (const Server& s : servers)
      if (!s.available) std::printf("  %s: %s\n", s.name, s.why.c_str());
    if (!fd_note.empty()) std::printf("  %s\n", fd_note.c_str());
    std::printf("\nthroughput: msgs/s (MB/s one way)\n");
    std::printf("%5s %6s | %17s | %17s | %17s | %10s %10s\n", "conns", "size", "epoll", "io_uring", "Node net", "epoll/node",
                "uring/node");
    for (const Point& p : points) {
      std::string cell[3];
      for (int si = 0; si < 3; ++si) cell[si] = fmt_rate(p.r[si]) + (fmt_mb(p.r[si]) == "-" ? "" : " (" + fmt_mb(p.r[si]) + ")");
      std::printf("%5d %6s | %17s | %17s | %17s | %10s %10s\n", p.conns, size_name(p.size).c_str(), cell[0].c_str(),
                  cell[1].c_str(), cell[2].c_str(), fmt_x(ratio_thr(p.r[0], p.r[2])).c_str(),
                  fmt_x(ratio_thr(p.r[1], p.r[2])).c_str());
    }
    std::printf("\nlatency per round trip: p50 / p99 in us; ratio = node/x for p50 and p99\n");
    std::printf("%5s %6s | %15s | %15s | %15s | %15s %15s | %5s %5s\n", "conns", "size", "epoll", "io_uring", "Node net",
                "epoll/node", "uring/node", "epoll", "uring");
    for (const Point& p : points) {
      std::string cell[3];
      for (int si = 0; si < 3; ++si)
        cell[si] = p.r[si].ran && p.r[si].error.empty() ? fmt_us(p.r[si], p.r[si].p50_us) + " / " + fmt_us(p.r[si], p.r[si].p99_us)
                                                        : fmt_rate(p.r[si]);
      std::string rx[2];
      for (int si = 0; si < 2; ++si) {
        const double a = ratio_lat(p.r[si].p50_us, p.r[2].p50_us, p.r[si], p.r[2]);
        const double b = ratio_lat(p.r[si].p99_us, p.r[2].p99_us, p.r[si], p.r[2]);
        rx[si] = a > 0 ? fmt_x(a) + " / " + fmt_x(b) : "-";
      }
      std::printf("%5d %6s | %15s | %15s | %15s | %15s %15s | %5s %5s\n", p.conns, size_name(p.size).c_str(),
                  cell[0].c_str(), cell[1].c_str(), cell[2].c_str(), rx[0].c_str(), rx[1].c_str(), verdict(p.r[0], p.r[2]),
                  verdict(p.r[1], p.r[2]));
    }
    std::printf("\ntarget (reported, never asserted): both back-ends ahead of Node's net (more msgs/s and lower p99) at "
                "every point: %s\n", all_pass ? "PASS" : "MISS");
    std::printf("correctness: %s\n(whole run %.1f s)\n", correct ? "every echo exact, no server errors" : "FAILED (see stderr)", elapsed);
  }
  std::fflush(stdout);
  std::_Exit(correct && measured > 0 ? 0 : 1);  // the watchdog thread is still sleeping
}
