#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Binding threads to processors (Linux): the processors this process may run on, and pinning
/// the calling thread to some of them. Elsewhere nothing is pinned.
public enum ProcessorAffinity {
    /// The processors the calling thread may run on, in increasing order (empty where unknown).
    public static func allowed() -> [Int] {
        #if os(Linux)
        guard let get = lookUp("sched_getaffinity") else { return [] }
        var mask = [UInt8](repeating: 0, count: maskBytes)
        let read = mask.withUnsafeMutableBytes { unsafeBitCast(get, to: Call.self)(0, maskBytes, $0.baseAddress!) }
        guard read == 0 else { return [] }
        return (0..<(maskBytes * 8)).filter { mask[$0 / 8] & (1 << UInt8($0 % 8)) != 0 }
        #else
        return []
        #endif
    }

    /// Binds the calling thread to `processors`; true when the kernel accepted it.
    @discardableResult
    public static func pinCurrentThread(to processors: [Int]) -> Bool {
        #if os(Linux)
        let valid = processors.filter { $0 >= 0 && $0 < maskBytes * 8 }
        guard !valid.isEmpty, let set = lookUp("sched_setaffinity") else { return false }
        var mask = [UInt8](repeating: 0, count: maskBytes)
        for processor in valid { mask[processor / 8] |= 1 << UInt8(processor % 8) }
        return mask.withUnsafeMutableBytes { unsafeBitCast(set, to: Call.self)(0, maskBytes, $0.baseAddress!) } == 0
        #else
        return false
        #endif
    }

    #if os(Linux)
    /// `sched_getaffinity` and `sched_setaffinity` (pid 0: the calling thread). They are GNU
    /// extensions the Glibc module does not import, so they are looked up by name.
    private typealias Call = @convention(c) (pid_t, Int, UnsafeMutableRawPointer) -> Int32
    /// A `cpu_set_t`: 1,024 processors.
    private static let maskBytes = 128

    private static func lookUp(_ name: String) -> UnsafeMutableRawPointer? {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), name)
    }
    #endif
}
