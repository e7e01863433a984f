import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a feeder (the broker's report feed, a pacing load generator) on its own OS thread, so it
/// never occupies one of the few threads of Swift's cooperative pool that the runtime runs on.
enum FeedThread {
    /// Runs `body` on a new thread and returns its result when it finishes. With `pinned`, the
    /// thread stays on the last processor the process may use (a load generator that keeps one
    /// core busy: the kernel then moves the runtime's threads to the others instead of sharing it).
    static func run<T: Sendable>(name: String, pinned: Bool = false, _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            let thread = Thread {
                if pinned { pinToLastProcessor() }
                continuation.resume(returning: body())
            }
            thread.name = name
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Binds the calling thread to the highest-numbered processor in its affinity mask (Linux;
    /// nothing elsewhere or with a single processor). `sched_*affinity` are GNU extensions the
    /// Glibc module does not import: looked up by name.
    private static func pinToLastProcessor() {
        #if canImport(Glibc)
        typealias Affinity = @convention(c) (pid_t, Int, UnsafeMutableRawPointer) -> Int32
        guard let get = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sched_getaffinity"),
              let set = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sched_setaffinity") else { return }
        let size = 128 // bytes: cpu_set_t, 1,024 processors
        var mask = [UInt8](repeating: 0, count: size)
        guard mask.withUnsafeMutableBytes({ unsafeBitCast(get, to: Affinity.self)(0, size, $0.baseAddress!) }) == 0 else { return }
        let processors = (0..<(size * 8)).filter { mask[$0 / 8] & (1 << UInt8($0 % 8)) != 0 }
        guard processors.count > 1, let last = processors.last else { return }
        var only = [UInt8](repeating: 0, count: size)
        only[last / 8] = 1 << UInt8(last % 8)
        _ = only.withUnsafeMutableBytes { unsafeBitCast(set, to: Affinity.self)(0, size, $0.baseAddress!) }
        #endif
    }
}
