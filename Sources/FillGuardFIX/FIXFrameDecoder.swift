/// Splits a byte stream into FIX message frames ("8=...|9=N|...|10=NNN|"), without validating
/// the fields: `FIXCodec.decode` does that. Garbage between frames is skipped and reported.
public struct FIXFrameDecoder: Sendable {
    /// The longest frame accepted; a BodyLength above it is treated as garbage.
    public var maximumFrameLength: Int
    private var buffer: [UInt8] = []
    private var start = 0

    /// A decoder with an empty buffer.
    public init(maximumFrameLength: Int = 1 << 20) {
        self.maximumFrameLength = maximumFrameLength
    }

    /// Bytes received but not yet returned as a frame.
    public var bufferedByteCount: Int { buffer.count - start }

    /// Adds received bytes.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, nil when more bytes are needed. Throws when the bytes at the head
    /// cannot be a frame (no "8=" start, bad BodyLength, CheckSum not where BodyLength says); the
    /// bad bytes are dropped up to the next "8=FIX", so calling again continues with what follows.
    public mutating func next() throws(FIXDecodeError) -> [UInt8]? {
        guard bufferedByteCount > 0 else { return nil }
        if !hasPrefix(at: start, "8=") {
            if bufferedByteCount < 2 && buffer[start] == UInt8(ascii: "8") { return nil }
            skipToNextBegin(from: start + 1)
            throw FIXDecodeError(.missingBeginString)
        }
        guard let firstSOH = index(of: soh, from: start, limit: 32) else {
            if bufferedByteCount < 32 { return nil }
            let garbled = String(decoding: buffer[start..<min(start + 16, buffer.count)], as: UTF8.self)
            skipToNextBegin(from: start + 1)
            throw FIXDecodeError(.garbledBeginString(garbled))
        }
        let lengthStart = firstSOH + 1
        if buffer.count < lengthStart + 2 { return nil }
        guard hasPrefix(at: lengthStart, "9=") else {
            skipToNextBegin(from: start + 1)
            throw FIXDecodeError(.invalidBodyLength("missing"))
        }
        guard let lengthEnd = index(of: soh, from: lengthStart + 2, limit: 12) else {
            if buffer.count - (lengthStart + 2) < 12 { return nil }
            skipToNextBegin(from: start + 1)
            throw FIXDecodeError(.invalidBodyLength("too long"))
        }
        let lengthText = String(decoding: buffer[(lengthStart + 2)..<lengthEnd], as: UTF8.self)
        guard let bodyLength = FIXCodec.parseDigits(buffer[(lengthStart + 2)..<lengthEnd]) else {
            skipToNextBegin(from: start + 1)
            throw FIXDecodeError(.invalidBodyLength(lengthText))
        }
        let trailerStart = lengthEnd + 1 + bodyLength
        let end = trailerStart + 7
        let length = end - start
        if length > maximumFrameLength {
            skipToNextBegin(from: start + 1)
            throw FIXDecodeError(.messageTooLong(length))
        }
        if buffer.count < end { return nil }
        guard hasPrefix(at: trailerStart, "10="), buffer[end - 1] == soh, buffer[trailerStart - 1] == soh else {
            // BodyLength points somewhere else than the trailer: find the real end to report the gap.
            skipToNextBegin(from: start + 1)
            throw FIXDecodeError(.bodyLengthMismatch(declared: bodyLength, actual: -1))
        }
        let frame = Array(buffer[start..<end])
        start = end
        return frame
    }

    private func hasPrefix(at position: Int, _ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard buffer.count - position >= count else { return false }
        return prefix.withUTF8Buffer { pointer in
            for offset in 0..<count where buffer[position + offset] != pointer[offset] { return false }
            return true
        }
    }

    private func index(of byte: UInt8, from position: Int, limit: Int) -> Int? {
        var index = position
        let end = min(buffer.count, position + limit)
        while index < end {
            if buffer[index] == byte { return index }
            index += 1
        }
        return nil
    }

    /// Drops bytes up to the next "8=FIX" at or after `position` (all of them if none), and
    /// returns what was dropped.
    @discardableResult
    private mutating func skipToNextBegin(from position: Int) -> ArraySlice<UInt8> {
        var index = position
        while index < buffer.count {
            if buffer[index] == UInt8(ascii: "8") && hasPrefix(at: index, "8=FIX") { break }
            // Keep a possible partial "8=FIX" at the very end.
            if buffer[index] == UInt8(ascii: "8") && buffer.count - index < 5 {
                let tail = Array(buffer[index...])
                if Array("8=FIX".utf8).starts(with: tail) { break }
            }
            index += 1
        }
        let dropped = buffer[start..<index]
        start = index
        return dropped
    }
}
