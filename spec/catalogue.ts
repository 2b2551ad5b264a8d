// The requirement catalogue: the single source of SPEC.md and of what the runner checks.
// IDs are stable: never renumber or reuse one. Sources are the tags of
// ../shared/reference/semantics-catalogue.md (MS-*, WINE-*, LU-*, MP) plus the anchors of
// conformance-anchors.md (ANCHOR-FRAME-n) and issue threads (owner/repo#n).
import type { Area, Level, Requirement } from './types.ts';

type Entry = Omit<Requirement, 'area'>;

function area(a: Area, entries: Entry[]): Requirement[] {
  return entries.map((e) => ({ ...e, area: a }));
}

const must: Level = 'MUST';
const should: Level = 'SHOULD';

const PORT_CAPS = ['port'];
const WORKER_CAPS = ['port', 'workers'];
const SOCKET_CAPS = ['port', 'sockets'];

export const catalogue: Requirement[] = [
  ...area('PORT', [
    {
      id: 'CP-PORT-001', level: must, title: 'posted values come back unchanged',
      statement: 'A posted packet is dequeued with the same key, byte count and token, with status ok and native error 0.',
      rationale: 'Servers route every completion by its key and token; a changed value misroutes I/O to the wrong session.',
      sources: ['MS-PQCS', 'WINE-NTSYNC'], capabilities: PORT_CAPS,
    },
    {
      id: 'CP-PORT-002', level: must, title: 'failed-I/O packets carry their own status',
      statement: 'A packet that carries an error status is still dequeued (the dequeue succeeds) with its key, byte count, portable status and native error intact.',
      rationale: 'GetQueuedCompletionStatus has four outcomes; treating a failed-I/O packet as "nothing dequeued" leaks the operation context.',
      sources: ['MS-GQCS', 'WINE-SOCK'], capabilities: PORT_CAPS,
    },
    {
      id: 'CP-PORT-003', level: must, title: 'zero timeout polls',
      statement: 'A dequeue with timeout 0 on an empty port returns "timeout" at once, and returns a queued packet at once when there is one.',
      rationale: 'Game loops poll the port between frames; a zero timeout that blocks stalls the frame.',
      sources: ['MS-GQCS', 'MS-GQCSEX'], capabilities: PORT_CAPS,
    },
    {
      id: 'CP-PORT-004', level: must, title: 'finite timeouts are honoured',
      statement: 'A dequeue with a finite timeout on an empty port returns "timeout" no earlier than the timeout and without dequeuing anything.',
      rationale: 'Idle-connection reapers and heartbeats are built on dequeue timeouts.',
      sources: ['MS-GQCS'], capabilities: PORT_CAPS,
    },
    {
      id: 'CP-PORT-005', level: must, title: 'an infinite wait never times out and wakes on a post',
      statement: 'A dequeue with an infinite timeout stays pending while the port is empty and completes with the packet posted later.',
      rationale: 'Worker threads wait with INFINITE; a spurious timeout is mistaken for shutdown.',
      sources: ['MS-GQCS', 'MS-GQCSEX'], capabilities: PORT_CAPS,
    },
    {
      id: 'CP-PORT-006', level: must, title: 'close wakes every waiter',
      statement: 'Closing a port wakes every dequeue waiting on it with "closed".',
      rationale: 'Server shutdown closes the port to release its worker threads; a waiter left blocked hangs the shutdown.',
      sources: ['MS-GQCS', 'WINE-NTSYNC'], capabilities: PORT_CAPS,
    },
    {
      id: 'CP-PORT-007', level: must, title: 'a closed port refuses work at once',
      statement: 'After close, a dequeue returns "closed" at once and a post is rejected with "closed".',
      rationale: 'A post that silently succeeds on a closed port loses the completion and the resources it carries.',
      sources: ['MS-GQCS', 'WINE-NTSYNC'], capabilities: PORT_CAPS,
    },
    {
      id: 'CP-PORT-008', level: must, title: 'close does not lose queued packets silently',
      statement: 'Packets still queued when the port is closed are handed back by close, in FIFO order, so their resources can be released; a second close hands back nothing.',
      rationale: 'Each packet may own a buffer or session reference; packets dropped at close are leaks nobody can see.',
      sources: ['MS-CICP', 'LU-man'], capabilities: PORT_CAPS,
    },
    {
      id: 'CP-PORT-009', level: must, title: 'batch dequeue returns between one and max packets',
      statement: 'A batch dequeue returns at least one packet and at most its maximum per call, in FIFO order, each with its own status; with nothing queued it times out.',
      rationale: 'GetQueuedCompletionStatusEx users size arrays by max and process each entry\'s own status.',
      sources: ['MS-GQCSEX', 'WINE-NTSYNC'], capabilities: ['port', 'port.batch'],
    },
    {
      id: 'CP-PORT-010', level: must, title: 'bad arguments are rejected and harmless',
      statement: 'A negative or too-large concurrency, a timeout outside -1..2^31-1, a batch maximum of 0 and an unknown port are each rejected as "invalid", and the target keeps working.',
      rationale: 'A conformance target must fail loudly and safely on misuse, never crash or corrupt state.',
      sources: ['MS-GQCS', 'MS-CICP'], capabilities: PORT_CAPS,
    },
    {
      id: 'CP-PORT-011', level: must, title: 'every packet is dequeued exactly once across threads',
      statement: 'With several producer and consumer threads on one port, every posted packet is dequeued exactly once: none lost, none duplicated.',
      rationale: 'A lost completion wedges a session forever; a duplicated one double-frees its buffer.',
      sources: ['MS-IOCP', 'LU-test'], capabilities: WORKER_CAPS,
    },
    {
      id: 'CP-PORT-012', level: should, title: 'concurrency 0 means the number of processors',
      statement: 'A port created with concurrency 0 never runs more threads at once than the hardware threads the target reports.',
      rationale: 'Servers create ports with 0 and size thread pools at twice the CPUs, relying on the port to cap the running ones.',
      sources: ['MS-CICP'], capabilities: WORKER_CAPS,
    },
  ]),

  ...area('CONC', [
    {
      id: 'CP-CONC-001', level: must, title: 'concurrency 1 runs one thread at a time',
      statement: 'With concurrency 1 and eight waiting threads doing busy work, at most one thread runs at any moment.',
      rationale: 'The concurrency value is how IOCP servers avoid context switches; handlers written for one running thread race without it.',
      sources: ['MS-CICP', 'MS-IOCP', 'WINE-SRV'], capabilities: WORKER_CAPS,
    },
    {
      id: 'CP-CONC-002', level: must, title: 'concurrency 2 runs at most two threads',
      statement: 'With concurrency 2 and eight waiting threads doing busy work, at most two threads run at any moment.',
      rationale: 'Same as CP-CONC-001 for a value above one, where an off-by-one in the gate shows.',
      sources: ['MS-CICP', 'MS-IOCP', 'WINE-SRV'], capabilities: WORKER_CAPS,
    },
    {
      id: 'CP-CONC-003', level: should, title: 'the concurrency value is used, not just bounded',
      statement: 'With concurrency 2, a backlog and eight waiting threads, two threads run at the same time at some point.',
      rationale: 'A port that serialises everything satisfies the upper bound yet halves throughput (tokio-rs/mio PR #1161 set the value to 1 by mistake).',
      sources: ['MS-IOCP', 'tokio-rs/mio#1161'], capabilities: WORKER_CAPS,
    },
    {
      id: 'CP-CONC-004', level: must, title: 'a running thread takes the backlog without blocking',
      statement: 'With concurrency 1 and a backlog, the running thread that dequeues again gets the next packet at once, and no other waiter is released while packets remain.',
      rationale: 'This is what keeps one hot thread on the CPU under load instead of a context switch per packet.',
      sources: ['MS-IOCP'], capabilities: WORKER_CAPS,
    },
    {
      id: 'CP-CONC-005', level: must, title: 'a thread that exits gives its slot back',
      statement: 'With concurrency 1, when the running thread exits, a waiting thread is released for the next packet.',
      rationale: 'A slot held by a dead thread wedges the port for good.',
      sources: ['MS-IOCP', 'MS-GQCS'], capabilities: WORKER_CAPS,
    },
    {
      id: 'CP-CONC-006', level: should, title: 'a thread that blocks releases its slot',
      statement: 'With concurrency 1, while the running thread is blocked (inside a blocking region), another waiter is released for the next packet.',
      rationale: 'Windows releases another thread when a handler blocks, so a handler waiting on a lock or disk does not stall the port; user-space ports need an explicit blocking region to do the same.',
      sources: ['MS-IOCP'], capabilities: ['port', 'workers', 'workers.blocking-region'],
    },
  ]),

  ...area('ORDER', [
    {
      id: 'CP-ORDER-001', level: must, title: 'a single consumer sees posting order',
      statement: 'A single consumer dequeues packets in the order they were posted.',
      rationale: 'Protocols that post their own work items (timers, deferred sends) depend on FIFO.',
      sources: ['MS-IOCP', 'WINE-NTFILE', 'LU-man'], capabilities: PORT_CAPS,
    },
    {
      id: 'CP-ORDER-002', level: must, title: 'waiters are released most-recent-first',
      statement: 'Waiting threads are released LIFO: the thread that started waiting last gets the next packet.',
      rationale: 'LIFO keeps the hot thread and its cache on the CPU and lets idle threads age out; Windows 10+ guarantees it.',
      sources: ['MS-IOCP', 'WINE-NTSYNC', 'WINE-SRV'], capabilities: WORKER_CAPS,
    },
    {
      id: 'CP-ORDER-003', level: must, title: 'order is kept between two threads',
      statement: 'Packets posted by one thread and dequeued by one other thread arrive in posting order.',
      rationale: 'FIFO must hold across threads, not only within one, or producer/consumer pipelines reorder work.',
      sources: ['MS-IOCP', 'WINE-NTFILE'], capabilities: WORKER_CAPS,
    },
    {
      id: 'CP-ORDER-004', level: must, title: 'each producer\'s order is kept under contention',
      statement: 'With several producer threads and one consumer, each producer\'s packets arrive in the order that producer posted them.',
      rationale: 'A queue that reorders under contention breaks per-session sequencing.',
      sources: ['MS-IOCP'], capabilities: WORKER_CAPS,
    },
  ]),

  ...area('EOF', [
    {
      id: 'CP-EOF-001', level: must, title: 'graceful close is a 0-byte eof after all data',
      statement: 'After the peer closes gracefully, a receive with a non-empty buffer completes with status eof and 0 bytes, after every byte sent before the close was delivered.',
      rationale: 'The classic porting bug: a 0-byte completion is end of stream only for a non-empty buffer.',
      sources: ['MS-WSARECV', 'WINE-SOCK', 'MP', 'LU-test'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-EOF-002', level: should, title: 'end of stream is sticky',
      statement: 'Every receive after end of stream completes again with eof and 0 bytes, never with an error.',
      rationale: 'libuv on Windows returned ENOTCONN here (joyent/libuv#948), which servers logged as a fault.',
      sources: ['MP', 'joyent/libuv#948'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-EOF-003', level: must, title: 'a zero-length receive is a probe, not a disconnect',
      statement: 'A zero-length receive pends until data arrives, completes with status ok and 0 bytes, and consumes nothing; if data is already there it completes at once.',
      rationale: 'Zero-byte receives save buffer memory under many idle connections; taking their 0 for a disconnect drops live players.',
      sources: ['WINE-SOCK', 'ASIO', 'dotnet/corefx#28098'], capabilities: ['port', 'sockets', 'sockets.zero-length-probe'],
    },
    {
      id: 'CP-EOF-004', level: must, title: 'a pending probe completes on disconnect',
      statement: 'A pending zero-length receive completes when the peer disconnects: with eof and 0 bytes after a graceful close, with reset after a reset.',
      rationale: 'An emulation bug left the probe pending forever after disconnect (dotnet/corefx#21865).',
      sources: ['dotnet/corefx#21865'], capabilities: ['port', 'sockets', 'sockets.zero-length-probe'],
    },
    {
      id: 'CP-EOF-005', level: must, title: 'a reset is an error, never a 0-byte success',
      statement: 'A peer reset completes a pending receive with status reset and 0 bytes, and the next receive or send fails at once with reset, never with a 0-byte success.',
      rationale: 'Taking a reset for a graceful close hides data loss; Wine 8.0 returns 0 bytes on the second receive.',
      sources: ['MS-WSARECV', 'WINE-SOCK'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-EOF-006', level: must, title: 'data before eof is exact for any segmentation',
      statement: 'Whatever the peer\'s write segmentation, the bytes received before eof are exactly the bytes sent, in order.',
      rationale: 'Off-by-one handling of the last segment before FIN truncates the final packet.',
      sources: ['MS-WSARECV', 'MP'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-EOF-007', level: must, title: 'sending after shutdown fails',
      statement: 'A send after a local shutdown of the send direction fails with an error status, and the shutdown itself queues no packet.',
      rationale: 'A send that succeeds after shutdown loses data silently.',
      sources: ['MS-WSASEND', 'LU-test', 'WINE-SOCK'], capabilities: SOCKET_CAPS,
    },
  ]),

  ...area('PARTIAL', [
    {
      id: 'CP-PARTIAL-001', level: must, title: 'a send completes fully or with an error',
      statement: 'By default a send completes with every requested byte or with an error status; a short success is never reported.',
      rationale: 'Code written for Windows ignores short sends; io_uring and epoll produce them (axboe/liburing#1337).',
      sources: ['MS-WSASEND', 'LU-man', 'axboe/liburing#1337', 'dotnet/runtime#48479'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-PARTIAL-002', level: must, title: 'reported bytes are exactly what the peer got',
      statement: 'The bytes a send reports never exceed the bytes requested and, while the connection stays open, are exactly the prefix the peer receives.',
      rationale: 'Over-reporting corrupts the stream; dotnet/corefx#19307 counted bytes sent before EAGAIN wrongly.',
      sources: ['LU-man', 'dotnet/corefx#19307'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-PARTIAL-003', level: must, title: 'a large send through a small buffer arrives whole',
      statement: '8 MiB sent through a small send buffer to a slow reader arrives exactly and in order, and the send completes with the full count.',
      rationale: 'Back-pressure is where looping emulations drop or repeat chunks.',
      sources: ['MS-WSASEND', 'WINE-SOCK'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-PARTIAL-004', level: must, title: 'outstanding sends keep their order',
      statement: 'Several sends outstanding on one socket are transmitted in the order they were issued.',
      rationale: 'io_uring makes no such promise by itself; a back-end must serialise.',
      sources: ['MS-WSASEND', 'LU-man'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-PARTIAL-005', level: must, title: 'opt-in short sends report exact prefixes',
      statement: 'In the opt-in partial mode a short send reports exactly the prefix sent, and the send-all helper completes the rest in order.',
      rationale: 'Applications must be testable against short completions on demand, not by luck.',
      sources: ['LU-man', 'axboe/liburing#78'], capabilities: ['port', 'sockets', 'sockets.partial-send-mode'],
    },
    {
      id: 'CP-PARTIAL-006', level: must, title: 'injected short transfers are absorbed',
      statement: 'With fault injection capping the bytes per system call, default-mode sends still complete fully and receives still deliver every byte.',
      rationale: 'Short transfers are rare on loopback; injection makes the resubmission path run in every test.',
      sources: ['dotnet/corefx#19307'], capabilities: ['port', 'sockets', 'fault-injection'],
    },
    {
      id: 'CP-PARTIAL-007', level: must, title: 'a receive completes with whatever is available',
      statement: 'A stream receive completes as soon as any data is available; it does not wait to fill the buffer.',
      rationale: 'Waiting for a full buffer deadlocks request/response protocols.',
      sources: ['MS-WSARECV'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-PARTIAL-008', level: must, title: 'sending to a reset peer is an error, not a signal',
      statement: 'A send to a peer that has reset the connection completes with an error status; the process receives no SIGPIPE.',
      rationale: 'SIGPIPE after a reset kills servers that never installed a handler (libuv/libuv#1013).',
      sources: ['libuv/libuv#1013', 'MP'], capabilities: SOCKET_CAPS,
    },
  ]),

  ...area('CANCEL', [
    {
      id: 'CP-CANCEL-001', level: must, title: 'close aborts a pending receive once',
      statement: 'Closing a socket with a receive pending completes that receive exactly once with status aborted.',
      rationale: 'io_uring does not complete it by itself and epoll never reports it: the receive stays pending forever (axboe/liburing#932).',
      sources: ['MS-CLOSE', 'LU-man', 'MP', 'axboe/liburing#932'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-CANCEL-002', level: must, title: 'close aborts a pending send once',
      statement: 'Closing a socket with a send pending completes that send exactly once with status aborted, reporting exactly the prefix already consumed.',
      rationale: 'A send left pending after close pins its buffer; Wine 8.0 completes it only after the peer reads.',
      sources: ['MS-CLOSE', 'WINE-SOCK'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-CANCEL-003', level: must, title: 'closing a listener aborts a pending accept',
      statement: 'Closing a listening socket with an accept pending completes the accept exactly once with status aborted and 0 bytes.',
      rationale: 'Shutdown paths close the listener first and wait for the accept to come back.',
      sources: ['WINE-SOCK', 'LU-man'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-CANCEL-004', level: must, title: 'cancel aborts and keeps the data',
      statement: 'Cancelling a pending receive completes it with aborted, and data that arrives later is delivered to the next receive.',
      rationale: 'A cancel must not eat bytes or leave the socket read-closed (vibe-d/eventcore#225).',
      sources: ['MS-CANCEL', 'WINE-SOCK', 'vibe-d/eventcore#225'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-CANCEL-005', level: must, title: 'cancelling a finished operation is not-found',
      statement: 'Cancelling an operation that already completed, or a socket with nothing pending, reports not-found and yields no second completion.',
      rationale: 'Cancel races are where double completions and double frees come from (LU-test cancel-race).',
      sources: ['MS-CANCEL', 'LU-man', 'LU-test'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-CANCEL-006', level: must, title: 'every accepted operation completes exactly once',
      statement: 'Every operation accepted as pending produces exactly one completion, whatever mix of cancel, close and peer events follows.',
      rationale: 'Never both, never neither: the invariant every resource-release path relies on.',
      sources: ['MS-CANCEL', 'LU-test'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-CANCEL-007', level: must, title: 'closing an idle socket queues nothing',
      statement: 'Closing a socket with nothing pending queues no packet.',
      rationale: 'A stray packet after close is dispatched to a freed session.',
      sources: ['WINE-SOCK'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-CANCEL-008', level: should, title: 'an in-flight connect can be cancelled',
      statement: 'Cancelling a pending connect completes it once with aborted.',
      rationale: 'It fails on io_uring in practice (scylladb/seastar#2302), leaving connect timeouts unenforceable.',
      sources: ['scylladb/seastar#2302'], capabilities: SOCKET_CAPS,
    },
  ]),

  ...area('ACCEPT', [
    {
      id: 'CP-ACCEPT-001', level: must, title: 'an accept completes with the listener\'s key and a new socket',
      statement: 'An accept completes through the port with the listening socket\'s key and a new, usable connected socket.',
      rationale: 'AcceptEx packets are routed by the listener\'s key; the new socket must be associated before use.',
      sources: ['MS-ACCEPTEX', 'WINE-SOCK'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-ACCEPT-002', level: must, title: 'one completion per connection',
      statement: 'N connections to a listener with accepts pending yield exactly N accept completions.',
      rationale: 'A lost accept leaves a client hanging; a duplicated one double-registers a session.',
      sources: ['LU-man', 'LU-test'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-ACCEPT-003', level: must, title: 'connect completes asynchronously',
      statement: 'An asynchronous connect completes through the port with status ok once connected.',
      rationale: 'ConnectEx semantics: success means connected and usable.',
      sources: ['MS-CONNECTEX', 'WINE-SOCK'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-ACCEPT-004', level: must, title: 'a refused connect is a refused completion',
      statement: 'A connect to a closed port completes asynchronously with status refused.',
      rationale: 'Refusal must arrive as a completion, not as a synchronous throw the proactor code does not expect.',
      sources: ['WINE-SOCK', 'LU-test'], capabilities: SOCKET_CAPS,
    },
  ]),

  ...area('POOL', [
    {
      id: 'CP-POOL-001', level: must, title: 'a pool never hands out more than it has',
      statement: 'A pool of capacity N never hands out more than N buffers at once, nor the same buffer twice.',
      rationale: 'The seeds\' lock-free pool has an ABA bug that hands one buffer to two owners.',
      sources: ['seeds/004'], capabilities: ['pool'],
    },
    {
      id: 'CP-POOL-002', level: must, title: 'pool conservation',
      statement: 'At every step, buffers in use plus buffers available equals the pool\'s total.',
      rationale: 'The only invariant that catches a leak the moment it happens.',
      sources: ['seeds/004'], capabilities: ['pool'],
    },
    {
      id: 'CP-POOL-003', level: must, title: 'an exhausted pool says so at once',
      statement: 'Acquiring from an exhausted pool returns pool-exhausted at once (or after a bounded wait when asked), never blocks forever, never crashes.',
      rationale: 'A pool that blocks when dry wedges every I/O thread at peak load.',
      sources: ['seeds/004', 'compio-rs/compio#961'], capabilities: ['pool'],
    },
    {
      id: 'CP-POOL-004', level: must, title: 'foreign and double releases are rejected',
      statement: 'Releasing a buffer twice, or one that does not belong to the pool, is rejected with a clear error and leaves the pool intact.',
      rationale: 'A double release puts one buffer on the free list twice: two owners later.',
      sources: ['seeds/004'], capabilities: ['pool'],
    },
    {
      id: 'CP-POOL-005', level: must, title: 'a receive on an empty pool loses nothing',
      statement: 'A pool-backed receive that finds the pool empty completes with pool-exhausted (never eof, never a teardown), and every byte arrives once buffers return and the receive is re-armed.',
      rationale: 'Treating ENOBUFS as end of stream tore down healthy connections (MDA2AV/ioxide#93, axboe/liburing#1275).',
      sources: ['LU-man', 'axboe/liburing#1275', 'MDA2AV/ioxide#93'], capabilities: ['port', 'sockets', 'pool'],
    },
    {
      id: 'CP-POOL-006', level: must, title: 'churn returns every buffer',
      statement: 'After 10 000 connections churned with random disconnects, resets and cancels, buffers in use return to 0.',
      rationale: 'Buffers must return on every path, disconnect and cancel included.',
      sources: ['seeds/004'], capabilities: ['port', 'sockets', 'pool'],
    },
    {
      id: 'CP-POOL-007', level: must, title: 'a full session pool refuses gracefully',
      statement: 'A connection beyond the session limit is refused in the documented way (the server-full message, then end of stream; the pending accept stays pending), existing sessions are unaffected, and capacity returns when sessions end.',
      rationale: 'Servers at capacity must shed load without disturbing players already connected.',
      sources: ['seeds/004'], capabilities: ['port', 'sockets', 'pool.sessions'],
    },
    {
      id: 'CP-POOL-008', level: must, title: 'completions survive a full completion queue',
      statement: 'When more completions arrive than the completion queue holds, none is dropped.',
      rationale: 'io_uring drops CQEs on overflow without IORING_FEAT_NODROP; a dropped completion wedges a session.',
      sources: ['LU-man', 'LU-test'], capabilities: SOCKET_CAPS,
    },
    {
      id: 'CP-POOL-009', level: should, title: 'pools report their statistics',
      statement: 'A pool reports total, in use, available, high-water mark and failed acquires.',
      rationale: 'Operators size pools from the high-water mark and alert on failed acquires.',
      sources: ['seeds/004'], capabilities: ['pool'],
    },
  ]),

  ...area('FRAME', [
    {
      id: 'CP-FRAME-001', level: must, title: 'any chunking yields the encoded frames',
      statement: 'The stream decoder yields exactly the encoded frames, in order, for any chunking of the byte stream (one byte at a time, many frames at once, anything between), and never a partial frame.',
      rationale: 'TCP splits and merges writes; decoders that assume one frame per read break under load.',
      sources: ['ANCHOR-FRAME-2', 'ANCHOR-FRAME-3', 'ANCHOR-FRAME-4', 'ANCHOR-FRAME-5'], capabilities: ['framing'],
    },
    {
      id: 'CP-FRAME-002', level: must, title: 'header-only frames are valid',
      statement: 'A frame whose size equals the 12-byte header (empty payload) decodes as a frame with an empty payload.',
      rationale: 'Keep-alives and acks have no payload.',
      sources: ['ANCHOR-FRAME-1'], capabilities: ['framing'],
    },
    {
      id: 'CP-FRAME-003', level: must, title: 'fields are little-endian and sized as documented',
      statement: 'The header is u16 size (including the header), u16 type, u32 sequence, u32 player id, all little-endian.',
      rationale: 'The seeds\' packed x86 structs are little-endian; a big-endian peer misreads every length.',
      sources: ['ANCHOR-FRAME-9', 'ANCHOR-FRAME-10', 'seeds/003'], capabilities: ['framing'],
    },
    {
      id: 'CP-FRAME-004', level: must, title: 'a size below the header is an error',
      statement: 'A size field smaller than the header is a typed error carrying the stream offset.',
      rationale: 'A size of 0 to 11 makes naive decoders loop forever or read garbage.',
      sources: ['ANCHOR-FRAME-8'], capabilities: ['framing'],
    },
    {
      id: 'CP-FRAME-005', level: must, title: 'a size above the limit is an error; the limit may change',
      statement: 'A size above the configured maximum is a typed error carrying the offset, and the maximum may be changed between frames.',
      rationale: 'Unbounded sizes let one client make the server allocate without limit.',
      sources: ['ANCHOR-FRAME-6', 'ANCHOR-FRAME-7'], capabilities: ['framing'],
    },
    {
      id: 'CP-FRAME-006', level: must, title: 'end of stream inside a frame is an error',
      statement: 'End of stream in the middle of a frame is a typed error that says how many bytes dangle; no half frame is delivered.',
      rationale: 'A truncated last frame handed to the game logic acts on garbage.',
      sources: ['ANCHOR-FRAME-11'], capabilities: ['framing'],
    },
    {
      id: 'CP-FRAME-007', level: must, title: 'unknown types are rejected when types are registered',
      statement: 'With a type registry given, a frame of an unregistered type is a typed error carrying the offset.',
      rationale: 'Dispatching an unknown type indexes out of a handler table.',
      sources: ['ANCHOR-FRAME-12'], capabilities: ['framing'],
    },
    {
      id: 'CP-FRAME-008', level: must, title: 'a fatal error closes the stream and keeps what was decoded',
      statement: 'After a fatal decode error the stream is closed, and every frame decoded before the error is still delivered.',
      rationale: 'Losing good frames that preceded a bad one loses player actions.',
      sources: ['ANCHOR-FRAME-6', 'ANCHOR-FRAME-11'], capabilities: ['framing'],
    },
    {
      id: 'CP-FRAME-009', level: must, title: 'batches are explicit and compression is bounded',
      statement: 'Aggregated batches carry an explicit count and sizes, may be compressed, and a batch whose decompressed size exceeds the limit is rejected without being expanded.',
      rationale: 'The seeds\' aggregator decompresses without a bound: a compression bomb exhausts memory.',
      sources: ['ANCHOR-FRAME-15', 'seeds/003'], capabilities: ['framing'],
    },
    {
      id: 'CP-FRAME-010', level: should, title: 'sequence numbers wrap',
      statement: 'The u32 sequence number and player id keep every value through encode and decode, 2^32-1 and the sign boundary 2^31 included, so sequences can wrap from 2^32-1 to 0.',
      rationale: 'A long session passes 2^32 packets; plain comparison then rejects every new packet.',
      sources: ['ANCHOR-FRAME-15'], capabilities: ['framing'],
    },
    {
      id: 'CP-FRAME-011', level: must, title: 'a writer that accepts nothing is an error',
      statement: 'On the write side, a writer that accepts 0 bytes is an error and a would-block writer resumes where it stopped.',
      rationale: 'A zero-progress writer otherwise spins forever.',
      sources: ['ANCHOR-FRAME-13'], capabilities: ['framing'],
    },
  ]),
];
