// mingw-w64 (GCC, posix threads) only: makes C++ thread_local destructors run while the thread's
// thread-local storage still exists.
//
// With mingw-w64's emulated TLS, two winpthreads keys are involved at thread exit: libgcc's emutls key,
// whose destructor frees every thread_local block of the thread, and libstdc++'s __cxa_thread_atexit key,
// whose destructor runs the thread_local destructors. winpthreads (_pthread_cleanup_dest) runs key
// destructors in key order, and keys are numbered in creation order. The emutls key is normally created
// first (the first thread_local access comes before the first registration of a destructor), so a
// thread_local destructor then runs on freed memory: under Wine 8.0 the driver crashed at thread exit in
// native/pool's ThreadCache destructor (a page fault walking its freed vector, stack: pthread_create_wrapper
// -> _pthread_cleanup_dest -> ~ThreadCache), and earlier in port_iocp.cpp (heap corruption in
// _pthread_cleanup_dest). Registering one (empty) thread_local destructor before anything else, from a
// static initializer of the first priority, creates libstdc++'s key first: its destructors then run first.
#if defined(__MINGW32__) && !defined(_MSC_VER)
extern "C" int __cxa_thread_atexit(void (*dtor)(void*), void* obj, void* dso_handle);
extern "C" void* __dso_handle;

namespace {
void nothing(void*) {}
int g_anchor;
struct CreateThreadAtexitKeyFirst {
  CreateThreadAtexitKeyFirst() { __cxa_thread_atexit(nothing, &g_anchor, &__dso_handle); }
};
__attribute__((init_priority(101))) CreateThreadAtexitKeyFirst g_first;
}  // namespace
#endif
