#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser

/// Writes a command's result to standard output and makes sure it got there: a result that
/// could not be written (a full disk, a closed pipe) is an error (exit 2), never a silent success.
func printResult(_ text: String) throws {
    if let failure = writeAll(text + "\n", to: STDOUT_FILENO) {
        let reason = String(cString: strerror(failure))
        writeToStandardError("fillguard: cannot write the result to standard output: \(reason)\n")
        throw ExitCode(2)
    }
}

/// Writes text to standard error (messages, alerts, progress), all of it if it can; returns
/// whether it all got there (a caller whose alerts matter turns false into an exit code).
@discardableResult
func writeToStandardError(_ text: String) -> Bool {
    writeAll(text, to: STDERR_FILENO) == nil
}

/// Writes all of `text` to `descriptor`; returns the `errno` of a write that failed, nil when
/// everything was written. A descriptor another program left non-blocking (a pipe shared with a
/// parent that set O_NONBLOCK) is waited on until it takes more, not taken as failed.
func writeAll(_ text: String, to descriptor: Int32) -> Int32? {
    var text = text
    return text.withUTF8 { bytes -> Int32? in
        guard var base = bytes.baseAddress else { return nil }
        var left = bytes.count
        while left > 0 {
            let count = write(descriptor, base, left)
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    waitUntilReady(descriptor, for: Int16(POLLOUT))
                    continue
                }
                return errno
            }
            base += count
            left -= count
        }
        return nil
    }
}

/// Waits until a non-blocking descriptor is ready (`POLLIN`: to read, `POLLOUT`: to write), or
/// has an error or hang-up the next read or write reports.
func waitUntilReady(_ descriptor: Int32, for events: Int16) {
    var entry = pollfd(fd: descriptor, events: events, revents: 0)
    while poll(&entry, 1, -1) < 0, errno == EINTR {}
}

/// Makes a write to a closed pipe fail with EPIPE (reported, exit 2) instead of killing the
/// process with SIGPIPE (exit 141, no message).
func reportClosedPipesAsErrors() {
    signal(SIGPIPE, SIG_IGN)
}

/// Reads `path` (`-`: standard input) to its end in chunks, handing each to `chunk` as it comes,
/// so an input of any length is never held whole (pipes, devices and process substitutions are read
/// like files); a directory, or a read that fails, is an error.
func readInput(_ path: String, _ chunk: (UnsafeRawBufferPointer) -> Void) -> Result<Void, InputFileError> {
    let descriptor = path == "-" ? STDIN_FILENO : open(path, O_RDONLY)
    guard descriptor >= 0 else { return .failure(InputFileError(path: path, reason: String(cString: strerror(errno)))) }
    defer { if descriptor != STDIN_FILENO { close(descriptor) } }
    var status = stat()
    if fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR {
        return .failure(InputFileError(path: path, reason: "it is a directory"))
    }
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK {
                // A non-blocking descriptor (standard input shared with a parent that set
                // O_NONBLOCK) with nothing to read yet: wait for more, as a blocking read would.
                waitUntilReady(descriptor, for: Int16(POLLIN))
                continue
            }
            return .failure(InputFileError(path: path, reason: String(cString: strerror(errno))))
        }
        if count == 0 { return .success(()) }
        buffer.withUnsafeBytes { chunk(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }
}

/// Why an input file could not be read.
struct InputFileError: Error, CustomStringConvertible {
    /// The path as given (`-`: standard input).
    var path: String
    /// The system's reason.
    var reason: String

    var description: String { "cannot read \(path == "-" ? "standard input" : "'\(path)'"): \(reason)" }
}
