import Foundation
import Prometheus
import Synchronization

/// Keeps a file of the manager's metrics in Prometheus's text format while a session runs (for
/// node_exporter's textfile collector, or a person): rewritten whole every second and at the end.
final class MetricsFile: Sendable {
    /// The path written: the one given, or the file a symbolic link given points to.
    let path: String
    /// The factory the session's manager records into.
    let factory: PrometheusMetricsFactory
    private let registry: PrometheusCollectorRegistry
    /// The last write's failure, said once on standard error (and again when it changes).
    private let lastFailure = Mutex<String?>(nil)

    /// A metrics file at `path` (a symbolic link is followed), with histogram buckets that fit
    /// FillGuard's microsecond work. Refused, before anything is written: a path that is not a
    /// regular file (a FIFO, a device, a directory), an existing file that is not a metrics
    /// file (a journal, anything else a person keeps), and any of `sparing`'s paths under
    /// another spelling (`./j.sqlite` for `j.sqlite`, a hard link), and any path inside one of
    /// `sparingDirectories` (a FIX session store, whose files it must never replace).
    init(path given: String, sparing: [String] = [], sparingDirectories: [String] = []) throws(MetricsFileError) {
        path = try Self.target(of: given)
        let canonical = Self.canonical(path)
        for directory in sparingDirectories {
            if canonical.hasPrefix(Self.resolved(directory: directory) + "/") {
                throw MetricsFileError("\(given) is inside the FIX session store \(directory): give a path outside it")
            }
        }
        var own = stat()
        let exists = stat(path, &own) == 0
        for spared in sparing {
            var other = stat()
            let same = Self.canonical(spared) == canonical
                || (exists && stat(spared, &other) == 0 && other.st_dev == own.st_dev && other.st_ino == own.st_ino)
            if same { throw MetricsFileError("\(given) is the journal's file \(spared): give another path") }
        }
        if exists {
            guard (own.st_mode & S_IFMT) == S_IFREG else {
                throw MetricsFileError("\(given) is not a regular file (a FIFO, a device or a directory): the metrics are written whole and renamed over the path")
            }
            guard Self.looksLikeMetrics(path) else {
                throw MetricsFileError("\(given) exists and is not a metrics file (it does not start with \"# \"): it would be replaced; give a new path or an earlier metrics file")
            }
        }
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(10), .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
            .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
        ]
        // Queue depths: events waiting for a symbol's lane.
        factory.defaultValueHistogramBuckets = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 10_000]
        self.registry = registry
        self.factory = factory
    }

    /// The file `path` names: itself, or what a symbolic link (or a chain of them) points to,
    /// which need not exist yet (a link into node_exporter's textfile directory, say).
    private static func target(of path: String) throws(MetricsFileError) -> String {
        var current = path
        for _ in 0..<40 {
            var info = stat()
            guard lstat(current, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK else { return current }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let count = readlink(current, &buffer, buffer.count - 1)
            guard count > 0 else { throw MetricsFileError(path: current, errno: errno) }
            let destination = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            current = destination.hasPrefix("/")
                ? destination
                : URL(fileURLWithPath: current).deletingLastPathComponent().appendingPathComponent(destination).path
        }
        throw MetricsFileError("\(path): too many levels of symbolic links")
    }

    /// `path` with its directory resolved (symbolic links, `.`, `..`), for comparing spellings.
    private static func canonical(_ path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return resolved(directory: url.deletingLastPathComponent().path) + "/" + url.lastPathComponent
    }

    /// `directory` with symbolic links, `.` and `..` resolved (as written when it does not exist).
    private static func resolved(directory: String) -> String {
        guard let resolved = realpath(directory, nil) else { return URL(fileURLWithPath: directory).standardizedFileURL.path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Whether the regular file at `path` is empty or starts as Prometheus's text format does.
    private static func looksLikeMetrics(_ path: String) -> Bool {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var start = [UInt8](repeating: 0, count: 2)
        let count = start.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, 2) }
        return count == 0 || (count == 2 && start == Array("# ".utf8))
    }

    /// Writes the metrics as they stand: to a temporary file beside `path` (a name of its own, so
    /// it can be no other file), renamed over it, so a reader never sees half a file.
    func write() throws(MetricsFileError) {
        let url = URL(fileURLWithPath: path)
        var template = Array((url.deletingLastPathComponent().path + "/." + url.lastPathComponent + ".XXXXXX").utf8CString)
        let bytes = registry.emitToBuffer()
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else { throw MetricsFileError(path: path, errno: errno) }
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        let temporary = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        _ = fchmod(descriptor, 0o644)
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress! + written, bytes.count - written) }
            guard count > 0 else {
                let failure = MetricsFileError(path: path, errno: errno)
                close(descriptor)
                unlink(temporary)
                throw failure
            }
            written += count
        }
        close(descriptor)
        guard rename(temporary, path) == 0 else {
            let failure = MetricsFileError(path: path, errno: errno)
            unlink(temporary)
            throw failure
        }
    }

    /// Writes as `write()` does; a failure (a full disk) is said on standard error once, not
    /// dropped, and the session goes on (the next write may take).
    private func writeOrSay() {
        do {
            try write()
            lastFailure.withLock { $0 = nil }
        } catch {
            let said = lastFailure.withLock { last -> Bool in
                defer { last = error.description }
                return last == error.description
            }
            if !said { writeToStandardError("fillguard: --metrics-file: \(error)\n") }
        }
    }

    /// Rewrites the file every second until the returned task is cancelled.
    func keepWriting() -> Task<Void, Never> {
        Task { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if !Task.isCancelled { writeOrSay() }
            }
        }
    }

    /// Stops `writer` (from `keepWriting()`) and, once it has stopped, writes the last counts:
    /// two writes at once could leave a temporary file behind.
    func finish(_ writer: Task<Void, Never>) async {
        writer.cancel()
        await writer.value
        writeOrSay()
    }
}

/// A metrics file that could not be written.
struct MetricsFileError: Error, CustomStringConvertible {
    /// What went wrong, for a person.
    let description: String

    /// The failure of a system call on `path`.
    init(path: String, errno: Int32) {
        description = "cannot write \(path): \(String(cString: strerror(errno)))"
    }

    /// A path refused, and why.
    init(_ description: String) {
        self.description = description
    }
}
