#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser

/// Writes a command's result to standard output and makes sure it got there: a result that
/// could not be written (a full disk, a closed pipe) is an error (exit 2), never a silent success.
func printResult(_ text: String) throws {
    var line = text + "\n"
    let written = line.withUTF8 { bytes -> Bool in
        guard var base = bytes.baseAddress else { return true }
        var left = bytes.count
        while left > 0 {
            let count = write(STDOUT_FILENO, base, left)
            if count < 0 {
                if errno == EINTR { continue }
                return false
            }
            base += count
            left -= count
        }
        return true
    }
    guard written else {
        let reason = String(cString: strerror(errno))
        writeToStandardError("fillguard: cannot write the result to standard output: \(reason)\n")
        throw ExitCode(2)
    }
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
