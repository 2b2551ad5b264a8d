// The Windows back-end of cpspec::Port (native/core/port.h) over the kernel's I/O completion port. The
// concurrency gate, the LIFO release of waiters and the release of a blocked thread's slot are the kernel's
// own; nothing here emulates them. See native/iocp/README.md for the design and what is not observable.
//
// A post carries a whole cpspec::Packet: PostQueuedCompletionStatus takes (bytes, key, OVERLAPPED*), so each
// post allocates a small record that starts with an OVERLAPPED and holds the packet. The record comes back as
// lpOverlapped and is freed when it is dequeued, or by close() when it drains the queue.
//
// Socket I/O of the IOCP back-end (iocp_backend.cpp) completes to the same kernel port: its OVERLAPPEDs are
// iocp::IoRecords (iocp_port.h, another magic), converted into packets by the back-end's callback when they
// are dequeued; a callback may swallow an intermediate kernel packet, and the dequeue then waits on.
#include "iocp_port.h"
#include <winternl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <cstddef>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

#include "port.h"

namespace cpspec {

namespace {

// The Win32 error for the NTSTATUS a socket operation left in OVERLAPPED::Internal (ntdll's
// RtlNtStatusToDosError, looked up at run time so no build needs to link ntdll).
DWORD win32_error_of(NTSTATUS st) {
  using Fn = ULONG(WINAPI*)(NTSTATUS);
  static const Fn fn = reinterpret_cast<Fn>(reinterpret_cast<void*>(GetProcAddress(GetModuleHandleW(L"ntdll.dll"), "RtlNtStatusToDosError")));
  if (st >= 0) return 0;
  return fn != nullptr ? fn(st) : ERROR_GEN_FAILURE;
}


constexpr std::uint64_t kRecordMagic = 0x6370737065637031ull;  // "cpspecp1"

// One posted packet. The OVERLAPPED must stay the first member: the kernel hands back its address.
struct PostRecord {
  OVERLAPPED ov{};
  std::uint64_t magic = kRecordMagic;
  Packet packet;
};
static_assert(offsetof(PostRecord, ov) == 0, "the OVERLAPPED must come first");

// Handle values are reused by the kernel as soon as they are closed. A thread that checked "not closed" and
// is about to call GetQueuedCompletionStatus with the old value must not wait on a *new* completion port
// that got the same value. Every completion port of this file is created under this lock (exclusive), and
// close() holds it (shared) from CloseHandle until no thread is inside a dequeue of the closed port: a late
// call then sees an invalid handle (or an object of another type) and fails at once.
SRWLOCK g_handle_lock = SRWLOCK_INIT;

[[noreturn]] void throw_last_error(const char* what) {
  throw std::system_error(static_cast<int>(GetLastError()), std::system_category(), what);
}

HANDLE create_port_handle(DWORD concurrency) {
  AcquireSRWLockExclusive(&g_handle_lock);
  HANDLE h = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, concurrency);
  const DWORD err = GetLastError();
  ReleaseSRWLockExclusive(&g_handle_lock);
  if (h == nullptr) {
    SetLastError(err);
    throw_last_error("CreateIoCompletionPort");
  }
  return h;
}

// A process-wide port nobody posts to. A thread ends its association with a port (and so gives back its
// running slot) by dequeuing from a different port: detach_current_thread() polls this one.
HANDLE parking_port() {
  static HANDLE h = create_port_handle(1);
  return h;
}

// Milliseconds to pass to the kernel for the time left until `deadline`, rounded up.
DWORD remaining_ms(std::chrono::steady_clock::time_point deadline) {
  const auto left = deadline - std::chrono::steady_clock::now();
  if (left <= std::chrono::steady_clock::duration::zero()) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<DWORD>(std::min<long long>(ms, 0x7FFFFFFF));
}

}  // namespace

struct Port::Impl {
  Impl(unsigned requested, unsigned effective)
      : handle(create_port_handle(static_cast<DWORD>(requested))), concurrency(effective) {}

  HANDLE handle;
  const unsigned concurrency;

  // Posts hold it shared, close() takes it exclusive to set `closed`: after that no post is in flight, so
  // the drain in close() sees every packet that a successful post queued.
  SRWLOCK post_lock = SRWLOCK_INIT;
  std::atomic<bool> closed{false};

  std::atomic<std::size_t> queued{0};   // our records posted and not yet dequeued or drained
  std::atomic<std::size_t> in_call{0};  // threads between the closed check and the return of the dequeue
  std::atomic<std::size_t> waiting{0};  // threads inside the kernel dequeue call
  std::atomic<std::size_t> running{0};  // see ThreadAssociation
  std::atomic<std::size_t> io_pending{0};  // socket I/O in flight to this port (iocp_port.h)

  // Converts one dequeued entry into a packet and frees its record (a post), or hands a socket operation's
  // record to its back-end. Returns false when there is no packet for the caller (the back-end swallowed an
  // intermediate kernel packet).
  bool take(OVERLAPPED* ov, ULONG_PTR key, DWORD bytes, Packet& out) {
    if (ov == nullptr) {  // a packet posted by someone else with a NULL overlapped
      out = Packet{};
      out.key = key;
      out.bytes = bytes;
      return true;
    }
    auto* io = reinterpret_cast<iocp::IoRecord*>(ov);
    if (io->magic == iocp::kIoRecordMagic) {
      const auto st = static_cast<NTSTATUS>(ov->Internal);
      const DWORD err = win32_error_of(st);
      io_pending.fetch_sub(1, std::memory_order_relaxed);
      out = Packet{};
      return io->on_complete(io, key, bytes, err, closed.load(std::memory_order_acquire), out);
    }
    auto* rec = reinterpret_cast<PostRecord*>(ov);
    if (rec->magic != kRecordMagic) {  // not ours: report it rather than reading garbage
      out = Packet{};
      out.key = key;
      out.bytes = bytes;
      out.status = Status::invalid;
      return true;
    }
    out = rec->packet;
    out.key = key;
    out.bytes = bytes;
    rec->magic = 0;
    delete rec;
    queued.fetch_sub(1, std::memory_order_relaxed);
    return true;
  }
};

// Bookkeeping for running(): the port the calling thread last dequeued a packet from, as the kernel
// associates it. The kernel also releases the slot of a thread that blocks; that is invisible here, so
// running() is an upper bound (threads that hold a packet and have not dequeued again, detached or exited).
struct ThreadAssociation {
  std::weak_ptr<Port> port;
  Port::Impl* impl = nullptr;
  bool in_kernel = false;  // the thread has waited on one of our ports (the kernel associated it)

  ~ThreadAssociation() { leave(); }

  void leave() {
    if (impl != nullptr) {
      if (std::shared_ptr<Port> p = port.lock()) p->impl_->running.fetch_sub(1, std::memory_order_relaxed);
    }
    impl = nullptr;
    port.reset();
  }

  void hold(Port* p) {
    port = p->weak_from_this();
    impl = p->impl_.get();
    impl->running.fetch_add(1, std::memory_order_relaxed);
  }

  // The implementation's own access to a port (ThreadAssociation is the friend port.h declares): the
  // accessors of iocp_port.h.
  static Port::Impl& impl_of(Port& p) noexcept { return *p.impl_; }

  // Per-thread state lives in a fiber-local slot whose callback runs at thread exit (like the kernel, which
  // ends the association when the thread exits). Not a C++ thread_local: with mingw-w64's emulated TLS, a
  // thread_local with a destructor crashed winpthreads' key cleanup at thread exit under Wine 8.0.
  static ThreadAssociation& current() {
    static const DWORD slot = FlsAlloc([](void* p) { delete static_cast<ThreadAssociation*>(p); });
    if (slot == FLS_OUT_OF_INDEXES) throw std::system_error(static_cast<int>(GetLastError()), std::system_category(), "FlsAlloc");
    auto* a = static_cast<ThreadAssociation*>(FlsGetValue(slot));
    if (a == nullptr) {
      a = new ThreadAssociation;
      FlsSetValue(slot, a);
    }
    return *a;
  }
};

Port::Port(unsigned concurrency)
    : impl_(std::make_unique<Impl>(concurrency,
                                   concurrency != 0 ? concurrency : std::max(1u, std::thread::hardware_concurrency()))) {}

Port::~Port() {
  close();
}

std::shared_ptr<Port> Port::create(unsigned concurrency) {
  // 0 goes to the kernel as 0 ("as many as there are processors"); concurrency() reports the resolved value.
  return std::shared_ptr<Port>(new Port(concurrency));
}

unsigned Port::concurrency() const noexcept { return impl_->concurrency; }

bool Port::post(const Packet& p) { return post_many(&p, 1); }

bool Port::post_many(const Packet* p, std::size_t n) {
  Impl& I = *impl_;
  AcquireSRWLockShared(&I.post_lock);
  struct Unlock {
    SRWLOCK* l;
    ~Unlock() { ReleaseSRWLockShared(l); }
  } unlock{&I.post_lock};
  if (I.closed.load(std::memory_order_acquire)) return false;
  for (std::size_t i = 0; i < n; ++i) {
    auto* rec = new PostRecord;
    rec->packet = p[i];
    I.queued.fetch_add(1, std::memory_order_relaxed);  // before the post, so a dequeue never sees it negative
    if (!PostQueuedCompletionStatus(I.handle, p[i].bytes, static_cast<ULONG_PTR>(p[i].key), &rec->ov)) {
      const DWORD err = GetLastError();
      I.queued.fetch_sub(1, std::memory_order_relaxed);
      delete rec;
      SetLastError(err);
      throw_last_error("PostQueuedCompletionStatus");
    }
  }
  return true;
}

DequeueKind Port::dequeue(Packet& out, std::int64_t timeout_ms) {
  std::size_t n = 0;
  return dequeue_many(&out, 1, n, timeout_ms);
}

DequeueKind Port::dequeue_many(Packet* out, std::size_t max, std::size_t& n, std::int64_t timeout_ms) {
  n = 0;
  if (max == 0) max = 1;
  Impl& I = *impl_;
  // The kernel ends the thread's previous association (and frees its slot) as soon as it waits here.
  ThreadAssociation& a = ThreadAssociation::current();
  a.leave();
  a.in_kernel = true;

  I.in_call.fetch_add(1, std::memory_order_seq_cst);
  struct Leave {
    std::atomic<std::size_t>& c;
    ~Leave() { c.fetch_sub(1, std::memory_order_seq_cst); }
  } leave_call{I.in_call};
  if (I.closed.load(std::memory_order_seq_cst)) return DequeueKind::closed;

  using clock = std::chrono::steady_clock;
  const bool infinite = timeout_ms < 0;
  const clock::time_point deadline = infinite ? clock::time_point::max() : clock::now() + std::chrono::milliseconds(timeout_ms);

  // Batch entries: on the stack for up to 64, else on the heap for this call.
  OVERLAPPED_ENTRY small[64];
  std::unique_ptr<OVERLAPPED_ENTRY[]> big;
  OVERLAPPED_ENTRY* entries = small;
  if (max > 64) {
    big.reset(new OVERLAPPED_ENTRY[max]);
    entries = big.get();
  }

  for (;;) {
    const DWORD wait = infinite ? INFINITE : remaining_ms(deadline);
    DWORD err = 0;
    I.waiting.fetch_add(1, std::memory_order_relaxed);
    if (max == 1) {
      DWORD bytes = 0;
      ULONG_PTR key = 0;
      OVERLAPPED* ov = nullptr;
      const BOOL ok = GetQueuedCompletionStatus(I.handle, &bytes, &key, &ov, wait);
      err = ok ? 0 : GetLastError();
      I.waiting.fetch_sub(1, std::memory_order_relaxed);
      if (ok || ov != nullptr) {  // a packet; with ok == FALSE a failed-I/O packet (status in the record)
        if (!I.take(ov, key, bytes, out[0])) continue;  // swallowed by its socket back-end: wait on
        n = 1;
        a.hold(this);
        return DequeueKind::packet;
      }
    } else {
      ULONG removed = 0;
      const BOOL ok = GetQueuedCompletionStatusEx(I.handle, entries, static_cast<ULONG>(max), &removed, wait, FALSE);
      err = ok ? 0 : GetLastError();
      I.waiting.fetch_sub(1, std::memory_order_relaxed);
      if (ok && removed > 0) {
        std::size_t got = 0;
        for (ULONG i = 0; i < removed; ++i) {
          if (I.take(entries[i].lpOverlapped, entries[i].lpCompletionKey, entries[i].dwNumberOfBytesTransferred, out[got])) ++got;
        }
        if (got == 0) continue;  // every entry was swallowed by its socket back-end: wait on
        n = got;
        a.hold(this);
        return DequeueKind::packet;
      }
      if (ok) err = WAIT_TIMEOUT;
    }
    if (err == WAIT_TIMEOUT) {
      if (I.closed.load(std::memory_order_acquire)) return DequeueKind::closed;
      // Kernel timers may end a wait up to a tick early: wait again for what is left of the timeout.
      if (!infinite && timeout_ms > 0 && clock::now() < deadline) continue;
      if (infinite) continue;
      return DequeueKind::timeout;
    }
    // ERROR_ABANDONED_WAIT_0: the port was closed while we waited; ERROR_INVALID_HANDLE: it was closed
    // before we got there. Anything else also means the port cannot be used any more.
    return DequeueKind::closed;
  }
}

std::vector<Packet> Port::close() {
  Impl& I = *impl_;
  std::vector<Packet> left;
  AcquireSRWLockExclusive(&I.post_lock);
  const bool was_closed = I.closed.exchange(true, std::memory_order_seq_cst);
  ReleaseSRWLockExclusive(&I.post_lock);
  if (was_closed) return left;

  // The closer's own kernel association moves to this port while it drains, and ends with CloseHandle.
  ThreadAssociation::current().leave();

  // Drain what is queued, FIFO. A poll obeys the concurrency gate: while other threads hold every slot it
  // returns nothing even with packets queued, so keep waiting (briefly) until the count of our records
  // reaches zero: either this thread gets a slot (it is the most recent waiter) or the running threads take
  // the packets themselves. Bounded, so a thread that never comes back cannot hang close().
  // Socket I/O still in flight (iocp_port.h) is waited for only briefly: a socket left open with a receive
  // pending would otherwise hold close() up; its record is then never returned (a bounded leak).
  std::vector<OVERLAPPED_ENTRY> entries(64);
  const auto started = std::chrono::steady_clock::now();
  const auto give_up = started + std::chrono::seconds(10);
  const auto give_up_io = started + std::chrono::milliseconds(250);
  for (;;) {
    ULONG removed = 0;
    const bool io_left = I.io_pending.load(std::memory_order_relaxed) > 0 && std::chrono::steady_clock::now() < give_up_io;
    const DWORD wait = I.queued.load(std::memory_order_relaxed) > 0 || io_left ? 10 : 0;
    const BOOL ok = GetQueuedCompletionStatusEx(I.handle, entries.data(), static_cast<ULONG>(entries.size()), &removed, wait, FALSE);
    if (ok && removed > 0) {
      for (ULONG i = 0; i < removed; ++i) {
        Packet p;
        if (I.take(entries[i].lpOverlapped, entries[i].lpCompletionKey, entries[i].dwNumberOfBytesTransferred, p)) left.push_back(p);
      }
      continue;
    }
    const bool io_wait = I.io_pending.load(std::memory_order_relaxed) > 0 && std::chrono::steady_clock::now() < give_up_io;
    if ((I.queued.load(std::memory_order_relaxed) == 0 && !io_wait) || std::chrono::steady_clock::now() >= give_up) break;
  }

  // Wake every waiter (ERROR_ABANDONED_WAIT_0) and make later calls fail, then keep new ports from taking
  // the old handle value until no thread can still be on its way into a dequeue of this port. Bounded:
  // Wine 8.0 does not wake waiters when the handle is closed (an infinite wait never returns, a finite one
  // returns at its timeout), and close() must not hang on them. A thread still waiting after the bound is
  // inside the kernel call, past the point where the handle value is looked up.
  AcquireSRWLockShared(&g_handle_lock);
  CloseHandle(I.handle);
  const auto bound = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  while (I.in_call.load(std::memory_order_seq_cst) != 0 && std::chrono::steady_clock::now() < bound) Sleep(1);
  ReleaseSRWLockShared(&g_handle_lock);
  return left;
}

bool Port::is_closed() const noexcept { return impl_->closed.load(std::memory_order_acquire); }

// The kernel sees a thread that blocks (any wait) and releases its slot itself; nothing to do here.
void Port::enter_blocking() {}
void Port::leave_blocking() {}

void Port::detach_current_thread() {
  // A thread stays associated with the port it last dequeued from until it exits, dequeues from another
  // port, or the port is closed. Polling the (always empty) parking port moves the association there, so
  // the slot is free before, say, the driver answers a request whose client then polls the port again.
  // A poll that timed out leaves the thread associated (and counted once it runs again), so this does not
  // depend on whether the last dequeue returned a packet.
  ThreadAssociation& a = ThreadAssociation::current();
  a.leave();
  if (!a.in_kernel) return;
  a.in_kernel = false;
  DWORD bytes = 0;
  ULONG_PTR key = 0;
  OVERLAPPED* ov = nullptr;
  GetQueuedCompletionStatus(parking_port(), &bytes, &key, &ov, 0);
}

namespace iocp {
DWORD error_of(const OVERLAPPED& ov) noexcept { return win32_error_of(static_cast<NTSTATUS>(ov.Internal)); }
HANDLE port_handle(Port& p) noexcept { return ThreadAssociation::impl_of(p).handle; }
void io_issued(Port& p) noexcept { ThreadAssociation::impl_of(p).io_pending.fetch_add(1, std::memory_order_relaxed); }
void io_retired(Port& p) noexcept { ThreadAssociation::impl_of(p).io_pending.fetch_sub(1, std::memory_order_relaxed); }
}  // namespace iocp

std::size_t Port::running() const { return impl_->running.load(std::memory_order_relaxed); }
std::size_t Port::queued() const { return impl_->queued.load(std::memory_order_relaxed); }
std::size_t Port::waiters() const { return impl_->waiting.load(std::memory_order_relaxed); }
// The kernel does the waiting here (GetQueuedCompletionStatusEx): there is no spin phase in which a waiter
// could drive a source, and the IOCP back-end needs none (its completions are queued by the kernel). A
// source attached here is simply never driven, and no waiter is known to be asleep rather than spinning.
void Port::attach_idle_source(const std::shared_ptr<IdleLink>&) {}
std::size_t Port::sleepers() const { return 0; }

}  // namespace cpspec
