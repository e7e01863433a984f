/// The FIX field separator, SOH (0x01).
let soh: UInt8 = 0x01

/// Why a message could not be encoded.
public enum FIXEncodeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A field has no value; FIX forbids empty values.
    case emptyValue(tag: Int)
    /// A non-data field's value contains SOH, which would split it.
    case separatorInValue(tag: Int)
    /// A tag is not a positive number.
    case invalidTag(Int)
    /// The caller set a field the codec writes itself (8, 9, 10, 35).
    case reservedTag(Int)

    /// A readable explanation.
    public var description: String {
        switch self {
        case .emptyValue(let tag): return "tag \(tag) has an empty value"
        case .separatorInValue(let tag): return "tag \(tag) contains the SOH separator"
        case .invalidTag(let tag): return "invalid tag number \(tag)"
        case .reservedTag(let tag): return "tag \(tag) is written by the codec"
        }
    }
}

/// Why received bytes are not a valid FIX message. Carries the message's MsgSeqNum and MsgType
/// when they could still be read, so the session can answer with a Reject (3).
public struct FIXDecodeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong.
    public enum Kind: Sendable, Hashable {
        /// The message does not start with "8=".
        case missingBeginString
        /// BeginString is not the expected version or is malformed.
        case garbledBeginString(String)
        /// The second field is not BodyLength (9) or it is not a number.
        case invalidBodyLength(String)
        /// BodyLength does not match the bytes between it and CheckSum.
        case bodyLengthMismatch(declared: Int, actual: Int)
        /// The last field is not a three-digit CheckSum (10).
        case invalidChecksum(String)
        /// The checksum does not match the bytes.
        case checksumMismatch(declared: Int, computed: Int)
        /// A field's tag is not a positive number.
        case nonNumericTag(String)
        /// A field has no "=".
        case missingEquals(String)
        /// A field has an empty value.
        case emptyValue(tag: Int)
        /// MsgType (35) is not the third field.
        case missingMsgType
        /// A tag appears twice outside a repeating group.
        case duplicateTag(Int)
        /// A tag required for this message type is missing.
        case missingRequiredTag(Int)
        /// A header field appears after body fields, or 8/9/35/10 appear out of place.
        case tagOutOfOrder(Int)
        /// A repeating group's count does not match its instances.
        case incorrectGroupCount(tag: Int, declared: Int, actual: Int)
        /// A field's value has the wrong format (a non-numeric MsgSeqNum, say).
        case incorrectValueFormat(tag: Int, value: String)
        /// The frame is longer than the decoder accepts.
        case messageTooLong(Int)
    }

    /// What is wrong.
    public var kind: Kind
    /// MsgSeqNum (34), when it could be read.
    public var msgSeqNum: Int?
    /// MsgType (35), when it could be read.
    public var msgType: String?

    /// A decode error.
    public init(_ kind: Kind, msgSeqNum: Int? = nil, msgType: String? = nil) {
        self.kind = kind
        self.msgSeqNum = msgSeqNum
        self.msgType = msgType
    }

    /// True when the frame itself is broken (framing, length, checksum): FIX says ignore such a
    /// message without consuming its sequence number. False when it is well framed but invalid,
    /// which the session answers with a Reject (3).
    public var isGarbled: Bool {
        switch kind {
        case .missingBeginString, .garbledBeginString, .invalidBodyLength, .bodyLengthMismatch, .invalidChecksum,
             .checksumMismatch, .messageTooLong:
            return true
        case .nonNumericTag, .missingEquals, .emptyValue, .missingMsgType, .duplicateTag, .missingRequiredTag, .tagOutOfOrder,
             .incorrectGroupCount, .incorrectValueFormat:
            return false
        }
    }

    /// SessionRejectReason (373) for a Reject (3) answering this error.
    public var sessionRejectReason: Int {
        switch kind {
        case .missingRequiredTag: return 1
        case .emptyValue: return 4
        case .incorrectValueFormat: return 6
        case .duplicateTag: return 13
        case .tagOutOfOrder: return 14
        case .incorrectGroupCount: return 16
        case .nonNumericTag, .missingEquals: return 99
        default: return 99
        }
    }

    /// RefTagID (371) for a Reject (3) answering this error, if a tag is to blame.
    public var refTagID: Int? {
        switch kind {
        case .missingRequiredTag(let tag), .duplicateTag(let tag), .tagOutOfOrder(let tag): return tag
        case .emptyValue(let tag), .incorrectValueFormat(let tag, _), .incorrectGroupCount(let tag, _, _): return tag
        default: return nil
        }
    }

    /// A readable explanation.
    public var description: String {
        switch kind {
        case .missingBeginString: return "message does not start with BeginString (8)"
        case .garbledBeginString(let value): return "garbled BeginString \"\(value)\""
        case .invalidBodyLength(let value): return "invalid BodyLength \"\(value)\""
        case .bodyLengthMismatch(let declared, let actual): return "BodyLength \(declared) but body is \(actual) bytes"
        case .invalidChecksum(let value): return "invalid CheckSum field \"\(value)\""
        case .checksumMismatch(let declared, let computed): return "CheckSum \(declared) but computed \(computed)"
        case .nonNumericTag(let text): return "non-numeric tag \"\(text)\""
        case .missingEquals(let text): return "field without '=': \"\(text)\""
        case .emptyValue(let tag): return "tag \(tag) has no value"
        case .missingMsgType: return "MsgType (35) is not the third field"
        case .duplicateTag(let tag): return "tag \(tag) appears more than once"
        case .missingRequiredTag(let tag): return "required tag \(tag) missing"
        case .tagOutOfOrder(let tag): return "tag \(tag) out of order"
        case .incorrectGroupCount(let tag, let declared, let actual): return "group \(tag) declares \(declared) instances, has \(actual)"
        case .incorrectValueFormat(let tag, let value): return "tag \(tag) has malformed value \"\(value)\""
        case .messageTooLong(let length): return "message of \(length) bytes is too long"
        }
    }
}

/// Encodes and decodes FIX tag=value messages with strict validation.
public enum FIXCodec {
    /// Required body tags per message type (beyond the standard header's 49, 56, 34, 52).
    public static let requiredTags: [String: [Int]] = [
        "0": [], "1": [112], "2": [7, 16], "3": [45], "4": [36], "5": [], "A": [98, 108],
        "8": [37, 17, 150, 39, 55, 54, 151, 14, 6],
        "9": [37, 11, 41, 39, 434],
        "D": [11, 55, 54, 60, 40],
        "F": [41, 11, 55, 54, 60],
        "G": [41, 11, 55, 54, 60, 40],
        "H": [11, 55, 54],
        "AF": [584, 585],
        "AN": [710, 724, 1, 581, 715, 60],
        "AO": [721, 728, 729],
        "AP": [721, 728],
        "V": [262, 263, 264],
        "W": [268],
        "Y": [262],
        "j": [372, 380],
    ]

    /// Standard header tags every message must carry.
    public static let requiredHeaderTags = [49, 56, 34, 52]

    /// The message's bytes: 8, 9 (computed), 35, header fields, body fields, 10 (computed).
    public static func encode(_ message: FIXMessage) throws(FIXEncodeError) -> [UInt8] {
        let headerOrder = FIXTag.header
        var header: [FIXField] = []
        var body: [FIXField] = []
        for field in message.fields {
            guard field.tag > 0 else { throw .invalidTag(field.tag) }
            if [8, 9, 10, 35].contains(field.tag) { throw .reservedTag(field.tag) }
            if field.value.isEmpty { throw .emptyValue(tag: field.tag) }
            if FIXTag.dataLength[field.tag] == nil, field.value.utf8.contains(soh) { throw .separatorInValue(tag: field.tag) }
            if headerOrder.contains(field.tag) { header.append(field) } else { body.append(field) }
        }
        header.sort { (headerOrder.firstIndex(of: $0.tag) ?? Int.max) < (headerOrder.firstIndex(of: $1.tag) ?? Int.max) }
        if message.beginString.isEmpty || message.beginString.utf8.contains(soh) { throw .emptyValue(tag: 8) }
        if message.msgType.isEmpty || message.msgType.utf8.contains(soh) { throw .emptyValue(tag: 35) }
        var inner: [UInt8] = []
        inner.reserveCapacity(256)
        appendField(&inner, 35, message.msgType)
        for field in header { appendField(&inner, field.tag, field.value) }
        for field in body { appendField(&inner, field.tag, field.value) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(inner.count + 32)
        appendField(&bytes, 8, message.beginString)
        appendField(&bytes, 9, String(inner.count))
        bytes.append(contentsOf: inner)
        let sum = checksum(bytes)
        appendField(&bytes, 10, threeDigits(sum))
        return bytes
    }

    /// Decodes one complete message and validates it: framing, BodyLength, CheckSum, tags,
    /// duplicates, group counts, header order and required tags.
    public static func decode(_ bytes: [UInt8], expectedBeginString: String? = FIXMessage.fix44,
                              groups: FIXGroupSpec = .standard) throws(FIXDecodeError) -> FIXMessage {
        // Framing: 8=...|9=N|...|10=NNN|
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "8"), bytes[1] == UInt8(ascii: "=") else { throw FIXDecodeError(.missingBeginString) }
        guard let firstSOH = bytes.firstIndex(of: soh) else { throw FIXDecodeError(.garbledBeginString(text(bytes[2...]))) }
        let beginString = text(bytes[2..<firstSOH])
        if beginString.isEmpty || !beginString.hasPrefix("FIX") { throw FIXDecodeError(.garbledBeginString(beginString)) }
        if let expectedBeginString, beginString != expectedBeginString { throw FIXDecodeError(.garbledBeginString(beginString)) }
        let lengthStart = firstSOH + 1
        guard bytes.count > lengthStart + 2, bytes[lengthStart] == UInt8(ascii: "9"), bytes[lengthStart + 1] == UInt8(ascii: "="),
              let lengthEnd = bytes[lengthStart...].firstIndex(of: soh) else {
            throw FIXDecodeError(.invalidBodyLength(text(bytes[lengthStart...].prefix(12))))
        }
        let lengthText = text(bytes[(lengthStart + 2)..<lengthEnd])
        guard let declared = parseDigits(bytes[(lengthStart + 2)..<lengthEnd]) else { throw FIXDecodeError(.invalidBodyLength(lengthText)) }
        let bodyStart = lengthEnd + 1
        // The trailer is the last 7 bytes: "10=NNN|".
        guard bytes.count >= bodyStart + 7, bytes[bytes.count - 1] == soh else {
            throw FIXDecodeError(.invalidChecksum(text(bytes.suffix(7))))
        }
        let trailerStart = bytes.count - 7
        guard bytes[trailerStart] == UInt8(ascii: "1"), bytes[trailerStart + 1] == UInt8(ascii: "0"), bytes[trailerStart + 2] == UInt8(ascii: "="),
              trailerStart == bodyStart || bytes[trailerStart - 1] == soh else {
            throw FIXDecodeError(.invalidChecksum(text(bytes.suffix(7))))
        }
        let actual = trailerStart - bodyStart
        if actual != declared { throw FIXDecodeError(.bodyLengthMismatch(declared: declared, actual: actual)) }
        guard let declaredSum = parseDigits(bytes[(trailerStart + 3)..<(bytes.count - 1)]), bytes.count - 1 - (trailerStart + 3) == 3 else {
            throw FIXDecodeError(.invalidChecksum(text(bytes[(trailerStart + 3)..<(bytes.count - 1)])))
        }
        let computed = checksum(bytes[0..<trailerStart])
        if computed != declaredSum { throw FIXDecodeError(.checksumMismatch(declared: declaredSum, computed: computed)) }

        // Fields between BodyLength and CheckSum.
        var raw: [FIXField] = []
        var index = bodyStart
        var pendingDataLength: Int?
        var rawError: FIXDecodeError.Kind?
        while index < trailerStart {
            guard let equals = bytes[index..<trailerStart].firstIndex(of: UInt8(ascii: "=")) else {
                rawError = rawError ?? .missingEquals(text(bytes[index..<trailerStart]))
                break
            }
            let tagBytes = bytes[index..<equals]
            guard let tag = parseDigits(tagBytes), tag > 0, tagBytes.first != UInt8(ascii: "0") else {
                rawError = rawError ?? .nonNumericTag(text(tagBytes))
                // Skip to the next field so MsgSeqNum can still be read for the Reject.
                guard let next = bytes[equals..<trailerStart].firstIndex(of: soh) else { break }
                index = next + 1
                continue
            }
            let valueStart = equals + 1
            let valueEnd: Int
            // A declared length is used only when it lands on a field's end inside the body;
            // one that does not (negative, too long, wrong) is left to the value check below.
            if let length = pendingDataLength, FIXTag.dataLength[tag] != nil, length >= 0, length < trailerStart - valueStart,
               bytes[valueStart + length] == soh {
                valueEnd = valueStart + length
            } else {
                guard let end = bytes[valueStart..<trailerStart].firstIndex(of: soh) else {
                    rawError = rawError ?? .missingEquals(text(bytes[index..<trailerStart]))
                    break
                }
                valueEnd = end
            }
            let value = text(bytes[valueStart..<valueEnd])
            if value.isEmpty { rawError = rawError ?? .emptyValue(tag: tag) }
            if FIXTag.dataLength.values.contains(tag) {
                pendingDataLength = FIXMessage.integer(value)
                if (pendingDataLength ?? -1) < 0 { rawError = rawError ?? .incorrectValueFormat(tag: tag, value: value) }
            } else {
                pendingDataLength = nil
            }
            raw.append(FIXField(tag, value))
            index = valueEnd + 1
        }
        let msgType = raw.first?.tag == 35 ? raw.first?.value : nil
        let seqField = raw.first(where: { $0.tag == 34 })?.value
        let msgSeqNum = seqField.flatMap(FIXMessage.integer)
        func fail(_ kind: FIXDecodeError.Kind) -> FIXDecodeError { FIXDecodeError(kind, msgSeqNum: msgSeqNum, msgType: msgType) }
        if let rawError { throw fail(rawError) }
        guard let msgType, !msgType.isEmpty else { throw fail(.missingMsgType) }
        if let seqField, (msgSeqNum ?? 0) < 1 { throw fail(.incorrectValueFormat(tag: 34, value: seqField)) }

        // Structure: header fields before body fields, no duplicates outside groups, group counts.
        let fields = Array(raw.dropFirst())
        var seen = Set<Int>()
        var inBody = false
        var position = 0
        let headerTags = Set(FIXTag.header)
        let messageGroups = groups.groups(of: msgType)
        while position < fields.count {
            let field = fields[position]
            if [8, 9, 10, 35].contains(field.tag) { throw fail(.tagOutOfOrder(field.tag)) }
            if headerTags.contains(field.tag) {
                if inBody { throw fail(.tagOutOfOrder(field.tag)) }
            } else {
                inBody = true
            }
            if !seen.insert(field.tag).inserted { throw fail(.duplicateTag(field.tag)) }
            position += 1
            if messageGroups.members(of: field.tag) != nil {
                guard let declaredCount = FIXMessage.integer(field.value), declaredCount >= 0 else {
                    throw fail(.incorrectValueFormat(tag: field.tag, value: field.value))
                }
                switch messageGroups.walkGroup(field.tag, fields: fields, from: position) {
                case .end(let next, let instances):
                    if instances != declaredCount {
                        throw fail(.incorrectGroupCount(tag: field.tag, declared: declaredCount, actual: instances))
                    }
                    position = next
                case .duplicate(let member):
                    throw fail(.duplicateTag(member))
                case .undelimited(let countTag):
                    throw fail(.incorrectGroupCount(tag: countTag, declared: declaredCount, actual: 0))
                case .badCount(let countTag, let value):
                    throw fail(.incorrectValueFormat(tag: countTag, value: value))
                case .wrongCount(let countTag, let declared, let actual):
                    throw fail(.incorrectGroupCount(tag: countTag, declared: declared, actual: actual))
                }
            }
        }
        for tag in requiredHeaderTags where !seen.contains(tag) { throw fail(.missingRequiredTag(tag)) }
        for tag in requiredTags[msgType] ?? [] where !seen.contains(tag) { throw fail(.missingRequiredTag(tag)) }
        return FIXMessage(beginString: beginString, msgType: msgType, fields: fields)
    }

    /// The FIX checksum: the byte sum modulo 256.
    public static func checksum(_ bytes: some Sequence<UInt8>) -> Int {
        var sum = 0
        for byte in bytes { sum &+= Int(byte) }
        return sum & 0xFF
    }

    static func appendField(_ bytes: inout [UInt8], _ tag: Int, _ value: String) {
        bytes.append(contentsOf: String(tag).utf8)
        bytes.append(UInt8(ascii: "="))
        bytes.append(contentsOf: value.utf8)
        bytes.append(soh)
    }

    static func threeDigits(_ value: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, 3 - digits.count)) + digits
    }

    /// Parses ASCII digits (at most 9) into an Int; nil if empty or any byte is not a digit.
    static func parseDigits(_ bytes: ArraySlice<UInt8>) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 9 else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    static func text(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}
