// What the IOCP socket back-end (iocp_backend.cpp) needs from the kernel-port implementation of cpspec::Port
// (port_iocp.cpp): the port's HANDLE, to associate sockets with it (CreateIoCompletionPort), and a way to
// have its own I/O completions converted into cpspec::Packets when they are dequeued.
//
// A socket operation's OVERLAPPED is the first member of an IoRecord with its own magic number. When
// Port::dequeue / dequeue_many (or close()'s drain) takes a kernel packet whose OVERLAPPED carries that magic,
// it calls the record's on_complete with the kernel's values; the record's owner (the back-end) either fills
// the Packet to deliver, or swallows the kernel packet (an intermediate step: the rest of a send-all, a
// probe re-armed, a refused session's accept re-armed) and the dequeue goes on waiting. The callback owns
// the record from then on (frees or re-issues it).
#pragma once

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <winsock2.h>
#include <windows.h>

#include <cstdint>

#include "port.h"

namespace cpspec::iocp {

inline constexpr std::uint64_t kIoRecordMagic = 0x6370737065637032ull;  // "cpspecp2"

struct IoRecord;
// key, bytes: the kernel packet's values. error: the Win32 error of the operation (0 = success), converted
// from the NTSTATUS the kernel left in OVERLAPPED::Internal. closing: the port is being closed (its drain):
// the callback must not re-issue I/O on it. Returns true when `out` is a packet for the application.
using CompleteFn = bool (*)(IoRecord* rec, ULONG_PTR key, DWORD bytes, DWORD error, bool closing, Packet& out);

struct IoRecord {
  OVERLAPPED ov{};  // must stay first: the kernel hands back its address
  std::uint64_t magic = kIoRecordMagic;
  CompleteFn on_complete = nullptr;
};

// The Win32 error of a completed overlapped operation (0 = success), from the NTSTATUS in ov.Internal.
DWORD error_of(const OVERLAPPED& ov) noexcept;

// The kernel completion port behind p (valid until p is closed).
HANDLE port_handle(Port& p) noexcept;
// Kernel I/O operations in flight whose packets will land on p: the back-end counts one before each
// overlapped call (io_issued) and takes it back when the call queued no packet (io_retired: a synchronous
// failure, or a synchronous success under FILE_SKIP_COMPLETION_PORT_ON_SUCCESS); dequeue takes it back for
// each IoRecord packet. Port::close() waits (briefly, bounded) for the count to reach zero before it closes
// the handle, so operations cancelled just before (a driver reset) still complete into the drain.
void io_issued(Port& p) noexcept;
void io_retired(Port& p) noexcept;

}  // namespace cpspec::iocp
