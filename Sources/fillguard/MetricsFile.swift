import Foundation
import Prometheus

/// Keeps a file of the manager's metrics in Prometheus's text format while a session runs (for
/// node_exporter's textfile collector, or a person): rewritten whole every second and at the end.
final class MetricsFile: Sendable {
    /// The path written.
    let path: String
    /// The factory the session's manager records into.
    let factory: PrometheusMetricsFactory
    private let registry: PrometheusCollectorRegistry

    /// A metrics file at `path`, with histogram buckets that fit FillGuard's microsecond work.
    init(path: String) {
        self.path = path
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

    /// Writes the metrics as they stand: to a temporary file beside `path`, renamed over it, so
    /// a reader never sees half a file.
    func write() throws(MetricsFileError) {
        let temporary = path + ".tmp"
        let bytes = registry.emitToBuffer()
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw MetricsFileError(path: temporary, errno: errno) }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress! + written, bytes.count - written) }
            guard count > 0 else {
                let failure = MetricsFileError(path: temporary, errno: errno)
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

    /// Rewrites the file every second until the returned task is cancelled.
    func keepWriting() -> Task<Void, Never> {
        Task { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if !Task.isCancelled { try? write() }
            }
        }
    }

    /// Stops `writer` (from `keepWriting()`) and, once it has stopped, writes the last counts:
    /// two writes at once could leave a temporary file behind.
    func finish(_ writer: Task<Void, Never>) async {
        writer.cancel()
        await writer.value
        try? write()
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
}
