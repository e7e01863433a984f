import FillGuardCore

/// Replays a trace as its bytes arrive, line by line, so a trace of any length is never held
/// whole: lines end at "\n", "\r\n" or "\r" (a pair split between two chunks included); a line
/// that is not valid UTF-8, or longer than `maximumLineLength` bytes, is refused as malformed
/// (the long one without being kept) and the replay goes on.
public struct TraceStream: Sendable {
    /// The longest line read, in bytes; a longer one is refused and skipped to its end.
    public static let maximumLineLength = 1 << 20

    private var replayer: TraceReplayer
    /// The bytes of the line not ended yet.
    private var pending: [UInt8] = []
    /// Lines begun so far (the number of the line in `pending`, once it has a byte or ends).
    private var lines = 0
    /// The line in progress was too long: its bytes are dropped until it ends.
    private var skipping = false
    /// The last byte was "\r": a "\n" right after it ends no second line.
    private var afterCarriageReturn = false

    /// A stream replayed with `options`.
    public init(options: ReplayOptions = ReplayOptions()) {
        replayer = TraceReplayer(options: options)
    }

    /// Takes the next bytes of the trace, replaying every line they end.
    public mutating func feed(_ bytes: some Collection<UInt8>) {
        for byte in bytes {
            if afterCarriageReturn {
                afterCarriageReturn = false
                if byte == 0x0A { continue }
            }
            if byte == 0x0A || byte == 0x0D {
                endLine()
                afterCarriageReturn = byte == 0x0D
            } else if !skipping {
                pending.append(byte)
                if pending.count > Self.maximumLineLength {
                    lines += 1
                    replayer.refuse(line: lines, InputError(.malformed, "the line is longer than \(Self.maximumLineLength) bytes"))
                    pending = []
                    skipping = true
                }
            }
        }
    }

    /// Ends the trace (a last line without a line end counts) and returns the final state.
    public mutating func finish() -> ReplayReport {
        if skipping {
            skipping = false
        } else if !pending.isEmpty {
            endLine()
        }
        return replayer.report()
    }

    private mutating func endLine() {
        defer { pending.removeAll(keepingCapacity: pending.count <= 1 << 16) }
        if skipping {
            skipping = false
            return
        }
        lines += 1
        var slice = pending[...]
        if lines == 1, slice.starts(with: [0xEF, 0xBB, 0xBF]) { slice = slice.dropFirst(3) } // a byte-order mark
        guard let text = String(validating: slice, as: UTF8.self) else {
            replayer.refuse(line: lines, InputError(.malformed, "the line is not valid UTF-8"))
            return
        }
        replayer.apply(text, lineNumber: lines)
    }
}
