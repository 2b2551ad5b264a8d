// Tests of the io_uring socket back-end (native/uring) against the back-end directly (no Node), over real
// loopback sockets, so ASan and TSan cover it: the epoll back-end's tests (same semantics) plus the
// io_uring specifics (cancel racing a completion salvages its result, send counts stay exact, the
// CPSPEC_DISABLE_URING switch). The peer side is a plain blocking socket driven by the test.
// Usage: cpspec-uring-test [name-substring]
// Prints one line per test and `N passed, M failed` last; exits non-zero when a check fails.
#include "backend_suite.h"

namespace {

// Cancelling an in-flight recv while data arrives: the recv completes aborted exactly once, and every byte
// the peer sent arrives, in order, to the following recvs (whether the kernel had already taken it or not).
void test_cancel_race_keeps_data() {
  Env e;
  for (int round = 0; round < 50; ++round) {
    Conn c = make_conn(e);
    OpId r = 0;
    CHECK(e.b->recv(c.server, 64, 1, r).ok());
    std::thread t([&] { (void)::send(c.peer, "0123456789abcdef", 16, 0); });
    if (round % 2 == 1) t.join();
    bool found = false;
    CHECK(e.b->cancel(c.server, r, found).ok());
    Packet p = e.next();
    CHECK_EQ(p.op, r);
    std::string got;
    if (found) {  // the cancel won in our book-keeping: aborted, nothing taken
      CHECK(p.status == Status::aborted);
      CHECK_EQ(p.bytes, 0u);
      CHECK(take(e, r) == "<none>");
    } else {      // the recv had completed before the cancel: its normal result
      CHECK(p.status == Status::ok);
      got = take(e, r);
    }
    if (t.joinable()) t.join();
    while (got.size() < 16) {
      OpId r2 = 0;
      CHECK(e.b->recv(c.server, 5, 2, r2).ok());
      p = e.next();
      CHECK_EQ(p.op, r2);
      CHECK(p.status == Status::ok);
      if (p.status != Status::ok) break;
      got += take(e, r2);
    }
    CHECK(got == "0123456789abcdef");
    CHECK(e.idle(5));
    ::close(c.peer);
    e.b->close(c.server, false);
    e.b->close(c.listener, false);
  }
}

// A cancelled send-all reports exactly the prefix the peer receives.
void test_cancel_send_exact_prefix() {
  Env e;
  Conn c = make_conn(e);
  CHECK(e.b->set_buffers(c.server, 4096, 0).ok());
  std::vector<std::uint8_t> big(4 << 20);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i * 7);
  OpId s = 0;
  CHECK(e.b->send(c.server, big.data(), big.size(), 1, false, s).ok());
  CHECK(e.idle(50));
  bool found = false;
  CHECK(e.b->cancel(c.server, s, found).ok());
  CHECK(found);
  Packet p = e.next();
  CHECK_EQ(p.op, s);
  CHECK(p.status == Status::aborted);
  CHECK(p.bytes > 0 && p.bytes < big.size());
  CHECK(e.b->close(c.server, false).ok());
  std::vector<std::uint8_t> got;
  std::uint8_t buf[65536];
  for (;;) {
    const ssize_t n = ::recv(c.peer, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.insert(got.end(), buf, buf + n);
  }
  CHECK_EQ(got.size(), static_cast<std::size_t>(p.bytes));
  CHECK(std::equal(got.begin(), got.end(), big.begin()));
  ::close(c.peer);
}

// A pending probe and a pending accept are cancelled without consuming anything.
void test_cancel_probe_and_accept() {
  Env e;
  Conn c = make_conn(e);
  OpId pr = 0, a = 0;
  CHECK(e.b->recv(c.server, 0, 1, pr).ok());
  CHECK(e.b->accept(c.listener, 2, 9, a).ok());
  CHECK(e.idle(20));
  bool found = false;
  CHECK(e.b->cancel(c.server, 0, found).ok());
  CHECK(found);
  CHECK(e.b->cancel(c.listener, a, found).ok());
  CHECK(found);
  for (int i = 0; i < 2; ++i) {
    Packet p = e.next();
    CHECK(p.op == pr || p.op == a);
    CHECK(p.status == Status::aborted);
  }
  CHECK(e.idle(20));
  // the next accept still gets the next connection
  CHECK(e.b->accept(c.listener, 3, 10, a).ok());
  const int peer2 = peer_connect(c.port);
  Packet p = e.next();
  CHECK_EQ(p.op, a);
  CHECK(p.status == Status::ok);
  CHECK(p.socket != 0);
  ::close(peer2);
  ::close(c.peer);
}

// Many sockets with ops in flight, then shutdown_all from another thread while data flows.
void test_many_sockets_shutdown() {
  Env e;
  std::vector<Conn> cs;
  for (int i = 0; i < 8; ++i) cs.push_back(make_conn(e));
  for (auto& c : cs) {
    OpId op = 0;
    CHECK(e.b->recv(c.server, 100, 1, op).ok());
    CHECK(e.b->recv(c.server, 0, 2, op).ok());
  }
  std::thread t([&] { e.b->shutdown_all(); });
  t.join();
  int n = 0;
  Packet p;
  while (e.port->dequeue(p, 200) == DequeueKind::packet) {
    CHECK(p.status == Status::aborted);
    ++n;
  }
  CHECK_EQ(n, 16);
  for (auto& c : cs) ::close(c.peer);
}

// Several threads submitting on their own sockets while the completion thread reaps: every send completes
// ok with its full count, in order per socket, and each peer receives exactly the bytes in issue order.
void test_threads_concurrent() {
  Env e;
  constexpr int kConns = 4;
  const int kMsgs = check::kSanitized ? 100 : 400;
  std::vector<Conn> cs;
  for (int i = 0; i < kConns; ++i) cs.push_back(make_conn(e));
  std::vector<std::thread> ts;
  std::vector<std::string> got(kConns);
  for (int i = 0; i < kConns; ++i) {
    ts.emplace_back([&, i] {
      for (int m = 0; m < kMsgs; ++m) {
        char msg[32];
        const int n = std::snprintf(msg, sizeof msg, "<%d:%05d>", i, m);
        OpId op = 0;
        CHECK(e.b->send(cs[i].server, reinterpret_cast<const std::uint8_t*>(msg), static_cast<std::size_t>(n), static_cast<std::uint64_t>(i), false, op).ok());
      }
    });
    ts.emplace_back([&, i] {
      const std::size_t want = static_cast<std::size_t>(kMsgs) * 9;
      char buf[4096];
      while (got[i].size() < want) {
        const ssize_t n = ::recv(cs[i].peer, buf, sizeof buf, 0);
        if (n <= 0) break;
        got[i].append(buf, static_cast<std::size_t>(n));
      }
    });
  }
  std::vector<int> done(kConns, 0);
  for (int k = 0; k < kConns * kMsgs; ++k) {
    Packet p = e.next();
    CHECK(p.status == Status::ok);
    CHECK_EQ(p.bytes, 9u);
    if (p.token < static_cast<std::uint64_t>(kConns)) ++done[p.token];
  }
  for (auto& t : ts) t.join();
  for (int i = 0; i < kConns; ++i) {
    CHECK_EQ(done[i], kMsgs);
    std::string want;
    for (int m = 0; m < kMsgs; ++m) {
      char msg[32];
      std::snprintf(msg, sizeof msg, "<%d:%05d>", i, m);
      want += msg;
    }
    CHECK(got[i] == want);
    ::close(cs[i].peer);
  }
}

// Catalogue C11: the exit of the thread that issued an operation does not cancel it (the request's task
// work then runs in the kernel's fallback worker).
void test_issuing_thread_exits() {
  Env e;
  Conn c = make_conn(e);
  OpId r = 0, pr = 0;
  std::thread([&] {
    CHECK(e.b->recv(c.server, 0, 1, pr).ok());
    CHECK(e.b->recv(c.server, 16, 2, r).ok());
  }).join();
  CHECK(e.idle(50));
  CHECK(::send(c.peer, "after", 5, 0) == 5);
  Packet p = e.next();
  CHECK_EQ(p.op, pr);
  CHECK_EQ(static_cast<int>(p.status), static_cast<int>(Status::ok));
  CHECK_EQ(p.native_error, 0);
  p = e.next();
  CHECK_EQ(p.op, r);
  CHECK(p.status == Status::ok);
  CHECK(take(e, r) == "after");
  ::close(c.peer);
}

// Close/cancel-all without IORING_ASYNC_CANCEL_FD|ALL (kernels < 5.19): one cancel per request.
void test_per_request_cancel() {
  ::setenv("CPSPEC_URING_NO_CANCEL_FD", "1", 1);
  test_close_aborts();
  test_cancel_probe_and_accept();
  test_many_sockets_shutdown();
  test_exactly_once_race();
  ::unsetenv("CPSPEC_URING_NO_CANCEL_FD");
}

// CPSPEC_DISABLE_URING=1 makes setup fail as a seccomp denial would.
void test_disable_switch() {
  ::setenv("CPSPEC_DISABLE_URING", "1", 1);
  std::string why;
  auto b = make_uring_backend(why);
  ::unsetenv("CPSPEC_DISABLE_URING");
  CHECK(b == nullptr);
  CHECK(why.find("io_uring_setup: EPERM") != std::string::npos);
  why.clear();
  auto b2 = make_uring_backend(why);
  CHECK(b2 != nullptr);
  if (b2) CHECK(std::string(b2->name()) == "uring");
}

// CP-POOL-008 on a tiny ring: 4 SQ / 8 CQ entries and 100 receives completing at once. The kernel parks
// the completions that do not fit (IORING_FEAT_NODROP); every one is delivered exactly once.
void test_cq_overflow() {
  ::setenv("CPSPEC_URING_SQ_ENTRIES", "4", 1);
  ::setenv("CPSPEC_URING_CQ_ENTRIES", "8", 1);
  {
    Env e;
    ::unsetenv("CPSPEC_URING_SQ_ENTRIES");
    ::unsetenv("CPSPEC_URING_CQ_ENTRIES");
    if (!e.b) return;
    constexpr int kN = 100;
    SocketId l = 0;
    std::uint16_t port = 0;
    CHECK(e.b->listen(e.port, 1, "127.0.0.1", 0, 128, l, port).ok());
    std::vector<int> peers;
    std::vector<SocketId> socks;
    for (int i = 0; i < kN; ++i) {
      OpId op = 0;
      CHECK(e.b->accept(l, 1, 2, op).ok());
      peers.push_back(peer_connect(port));
      Packet p = e.next();
      CHECK(p.status == Status::ok);
      socks.push_back(p.socket);
    }
    // Whether a burst overflows depends on how fast the completion thread reaps: repeat it (each round
    // checked in full) until one did, at most 20 times.
    for (int round = 0; round < 20 && uring_cq_overflows(*e.b) == 0; ++round) {
      std::vector<OpId> ops(kN);
      for (int i = 0; i < kN; ++i) CHECK(e.b->recv(socks[i], 8, static_cast<std::uint64_t>(i), ops[i]).ok());
      for (int fd : peers) (void)::send(fd, "x", 1, 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::vector<int> seen(kN, 0);
      for (int i = 0; i < kN; ++i) {
        Packet p = e.next();
        CHECK(p.status == Status::ok);
        if (p.token < static_cast<std::uint64_t>(kN)) ++seen[p.token];
        (void)take(e, p.op);
      }
      for (int i = 0; i < kN; ++i) CHECK_EQ(seen[i], 1);
      CHECK(e.idle(20));
    }
    CHECK(uring_cq_overflows(*e.b) > 0);  // a burst really overflowed the 8-entry CQ
    for (int fd : peers) ::close(fd);
  }
}

}  // namespace

int main(int argc, char** argv) {
  suite::make = make_uring_backend;
  suite::name = "io_uring";
  TestList tests = kSharedTests;
  const TestList own = {
      {"cancel_race_keeps_data", test_cancel_race_keeps_data},
      {"cancel_send_exact_prefix", test_cancel_send_exact_prefix},
      {"cancel_probe_and_accept", test_cancel_probe_and_accept},
      {"many_sockets_shutdown", test_many_sockets_shutdown},
      {"threads_concurrent", test_threads_concurrent},
      {"issuing_thread_exits", test_issuing_thread_exits},
      {"per_request_cancel", test_per_request_cancel},
      {"disable_switch", test_disable_switch},
      {"cq_overflow", test_cq_overflow},
  };
  tests.insert(tests.end(), own.begin(), own.end());
  return run_tests(argc, argv, tests);
}
