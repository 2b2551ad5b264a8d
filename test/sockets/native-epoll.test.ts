// The native target's sockets on the epoll back-end (native/epoll); the suite is shared with the io_uring
// back-end (native-sockets.shared.ts).
import { nativeSocketSuite } from './native-sockets.shared.ts';

nativeSocketSuite('epoll');
