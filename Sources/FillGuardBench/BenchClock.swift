#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Monotonic and CPU clocks in nanoseconds, read directly (cheaper than `ContinuousClock` and
/// comparable across threads).
public enum BenchClock {
    /// Monotonic wall-clock time in nanoseconds.
    @inline(__always)
    public static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// CPU time used by the whole process (all threads), in nanoseconds.
    public static func processCPU() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// Gives the core to another runnable thread, if any (used by pacing and spin waits).
    @inline(__always)
    public static func yieldThread() {
        sched_yield()
    }

    /// Sleeps the calling thread for about 20 µs: a feed waiting for the runtime to take its
    /// backlog gives its core to the runtime instead of spinning on it (a broker's feed would
    /// block on its socket).
    public static func backOff() {
        var spec = timespec(tv_sec: 0, tv_nsec: 20_000)
        _ = nanosleep(&spec, nil)
    }

    /// Sleeps the calling thread until the monotonic clock reads `deadline` (nanoseconds).
    public static func sleep(until deadline: Int64) {
        #if canImport(Glibc)
        var spec = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &spec, nil) == EINTR {}
        #else
        while now() < deadline { usleep(UInt32(clamping: max(1, (deadline - now()) / 1_000))) }
        #endif
    }

    /// Nanoseconds of a `Duration`.
    public static func nanos(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// Resident memory of this process, read from /proc/self/status (Linux; zero elsewhere).
public enum ProcessMemory {
    /// Current resident set size in KiB (VmRSS).
    public static var residentKiB: Int { field("VmRSS:") }
    /// Peak resident set size in KiB since the process started (VmHWM).
    public static var peakResidentKiB: Int { field("VmHWM:") }

    /// Returns freed heap pages to the system (glibc `malloc_trim`), so RSS shows live memory.
    public static func releaseFreeMemory() {
        #if canImport(Glibc)
        typealias Trim = @convention(c) (Int) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
        #endif
    }

    private static func field(_ name: String) -> Int {
        guard let file = fopen("/proc/self/status", "r") else { return 0 }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 512)
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard line.hasPrefix(name) else { continue }
            let digits = line.dropFirst(name.count).filter(\.isNumber)
            return Int(digits) ?? 0
        }
        return 0
    }
}
