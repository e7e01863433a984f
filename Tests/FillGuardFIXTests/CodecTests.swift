import Foundation
import Testing
@testable import FillGuardFIX

/// Renders SOH as "|" so expectations stay readable.
func wire(_ bytes: [UInt8]) -> String { String(decoding: bytes.map { $0 == 1 ? UInt8(ascii: "|") : $0 }, as: UTF8.self) }
/// Turns "|" into SOH.
func bytes(_ text: String) -> [UInt8] { Array(text.utf8).map { $0 == UInt8(ascii: "|") ? 1 : $0 } }
/// Builds a frame from "35=...|...|" with a correct BodyLength and CheckSum.
func frame(_ inner: String, begin: String = "FIX.4.4") -> [UInt8] {
    let body = bytes(inner)
    var out = bytes("8=\(begin)|9=\(body.count)|") + body
    let sum = FIXCodec.checksum(out)
    out += bytes("10=\(FIXCodec.threeDigits(sum))|")
    return out
}

@Suite("FIX codec", .timeLimit(.minutes(5)))
struct CodecTests {
    let heartbeat = "35=0|49=FG|56=EX|34=2|52=20240101-00:00:00.000|"

    @Test func encodesWithBodyLengthAndChecksum() throws {
        let message = FIXMessage(msgType: "0", fields: [
            FIXField(52, "20240101-00:00:00.000"), FIXField(34, "2"), FIXField(49, "FG"), FIXField(56, "EX"),
        ])
        let encoded = try FIXCodec.encode(message)
        // Header fields go in standard order whatever order they were given in.
        #expect(wire(encoded) == wire(frame(heartbeat)))
        #expect(wire(encoded).hasPrefix("8=FIX.4.4|9=47|35=0|49=FG|56=EX|34=2|52="))
        let known = bytes("8=FIX.4.4|9=5|35=0|10=") // checksum of a known prefix, by hand
        #expect(FIXCodec.checksum(bytes("8=FIX.4.4|9=5|35=0|")) == known.dropLast(3).reduce(0) { ($0 + Int($1)) } % 256)
    }

    @Test func roundTripsThroughDecode() throws {
        let message = FIXMessage(msgType: "D", fields: [
            FIXField(49, "FG"), FIXField(56, "EX"), FIXField(34, "7"), FIXField(52, "20240101-00:00:00.000"),
            FIXField(11, "O1"), FIXField(21, "1"), FIXField(55, "GLD"), FIXField(54, "1"), FIXField(60, "20240101-00:00:00.000"),
            FIXField(38, "300.5"), FIXField(40, "2"), FIXField(44, "248.1"),
        ])
        let decoded = try FIXCodec.decode(try FIXCodec.encode(message))
        #expect(decoded == message)
        #expect(decoded[44] == "248.1")
        #expect(decoded.int(34) == 7)
    }

    @Test func encodeRefusesBadValues() {
        #expect(throws: FIXEncodeError.emptyValue(tag: 58)) { try FIXCodec.encode(FIXMessage(msgType: "0", fields: [FIXField(58, "")])) }
        #expect(throws: FIXEncodeError.separatorInValue(tag: 55)) { try FIXCodec.encode(FIXMessage(msgType: "D", fields: [FIXField(55, "A\u{01}B")])) }
        #expect(throws: FIXEncodeError.reservedTag(10)) { try FIXCodec.encode(FIXMessage(msgType: "0", fields: [FIXField(10, "000")])) }
        #expect(throws: FIXEncodeError.invalidTag(0)) { try FIXCodec.encode(FIXMessage(msgType: "0", fields: [FIXField(0, "x")])) }
    }

    func decodeError(_ bytes: [UInt8]) -> FIXDecodeError? {
        do { _ = try FIXCodec.decode(bytes); return nil } catch { return error }
    }

    @Test func missingOrGarbledBeginString() {
        #expect(decodeError(bytes("9=5|35=0|10=000|"))?.kind == .missingBeginString)
        #expect(decodeError(frame(heartbeat, begin: "FIX.4.2"))?.kind == .garbledBeginString("FIX.4.2"))
        #expect(decodeError(frame(heartbeat, begin: "XYZ"))?.kind == .garbledBeginString("XYZ"))
        #expect(decodeError(frame(heartbeat))?.isGarbled == nil)
    }

    @Test func bodyLengthMismatch() {
        let bad = frame(heartbeat)
        // Claim one byte more than there is; fix the checksum so only the length is wrong.
        let altered = bytes("8=FIX.4.4|9=48|") + Array(bad.dropFirst("8=FIX.4.4|9=47|".count).dropLast(7))
        let sum = FIXCodec.checksum(altered)
        let error = decodeError(altered + bytes("10=\(FIXCodec.threeDigits(sum))|"))
        #expect(error?.kind == .bodyLengthMismatch(declared: 48, actual: 47))
        #expect(error?.isGarbled == true)
        #expect(decodeError(bytes("8=FIX.4.4|9=x|35=0|10=000|"))?.kind == .invalidBodyLength("x"))
    }

    @Test func badChecksum() {
        var bad = frame(heartbeat)
        let computed = FIXCodec.checksum(bad.dropLast(7))
        let wrong = (computed + 1) % 256
        bad.replaceSubrange((bad.count - 4)..<(bad.count - 1), with: Array(FIXCodec.threeDigits(wrong).utf8))
        #expect(decodeError(bad)?.kind == .checksumMismatch(declared: wrong, computed: computed))
        var letters = frame(heartbeat)
        letters.replaceSubrange((letters.count - 4)..<(letters.count - 1), with: Array("abc".utf8))
        #expect(decodeError(letters)?.kind == .invalidChecksum("abc"))
    }

    @Test func nonNumericTagKeepsSeqNumForTheReject() {
        let error = decodeError(frame("35=0|49=FG|56=EX|34=9|52=20240101-00:00:00.000|5x=1|"))
        #expect(error?.kind == .nonNumericTag("5x"))
        #expect(error?.msgSeqNum == 9)
        #expect(error?.msgType == "0")
        #expect(error?.isGarbled == false)
        #expect(error?.sessionRejectReason == 99)
    }

    @Test func duplicateTagOutsideGroups() {
        let error = decodeError(frame("35=1|49=FG|56=EX|34=3|52=20240101-00:00:00.000|112=a|112=b|"))
        #expect(error?.kind == .duplicateTag(112))
        #expect(error?.sessionRejectReason == 13)
        #expect(error?.refTagID == 112)
    }

    @Test func missingRequiredTags() {
        #expect(decodeError(frame("35=1|49=FG|56=EX|34=3|52=20240101-00:00:00.000|"))?.kind == .missingRequiredTag(112))
        #expect(decodeError(frame("35=0|49=FG|56=EX|52=20240101-00:00:00.000|"))?.kind == .missingRequiredTag(34))
        #expect(decodeError(frame("49=FG|56=EX|34=1|52=20240101-00:00:00.000|"))?.kind == .missingMsgType)
        #expect(decodeError(frame("35=0|49=FG|56=EX|34=x|52=20240101-00:00:00.000|"))?.kind == .incorrectValueFormat(tag: 34, value: "x"))
        #expect(decodeError(frame("35=0|49=FG|56=EX|34=2|52=20240101-00:00:00.000|58=|"))?.kind == .emptyValue(tag: 58))
    }

    @Test func headerAfterBodyIsOutOfOrder() {
        #expect(decodeError(frame("35=0|49=FG|56=EX|52=20240101-00:00:00.000|112=a|34=2|"))?.kind == .tagOutOfOrder(34))
    }

    @Test func repeatingGroups() throws {
        let inner = "35=8|49=EX|56=FG|34=4|52=20240101-00:00:00.000|37=B1|17=E1|150=0|39=0|55=GLD|54=1|151=10|14=0|6=0|"
            + "453=2|448=P1|447=D|452=1|448=P2|447=D|452=3|"
        let message = try FIXCodec.decode(frame(inner))
        let parties = message.groups(453)
        #expect(parties.count == 2)
        #expect(parties[1] == [FIXField(448, "P2"), FIXField(447, "D"), FIXField(452, "3")])
        let wrongCount = inner.replacingOccurrences(of: "453=2", with: "453=3")
        #expect(decodeError(frame(wrongCount))?.kind == .incorrectGroupCount(tag: 453, declared: 3, actual: 2))
        let noDelimiter = "35=8|49=EX|56=FG|34=4|52=20240101-00:00:00.000|37=B1|17=E1|150=0|39=0|55=GLD|54=1|151=10|14=0|6=0|453=1|447=D|"
        #expect(decodeError(frame(noDelimiter))?.kind == .incorrectGroupCount(tag: 453, declared: 1, actual: 0))
        let dupInInstance = "35=8|49=EX|56=FG|34=4|52=20240101-00:00:00.000|37=B1|17=E1|150=0|39=0|55=GLD|54=1|151=10|14=0|6=0|453=1|448=P|447=D|447=D|"
        #expect(decodeError(frame(dupInInstance))?.kind == .duplicateTag(447))
    }

    @Test("an execution report's nested and dictionary-only groups decode (they were refused, and the fill lost): parties' sub-ids, trade timestamps, legs with their own parties")
    func nestedAndDictionaryGroups() throws {
        let head = "35=8|49=EX|56=FG|34=4|52=20240101-00:00:00.000|37=B1|17=E1|150=F|39=1|55=GLD|54=1|151=10|14=5|6=100|32=5|31=100|"
        let parties = "453=2|448=P1|447=D|452=1|802=2|523=S1|803=1|523=S2|803=2|448=P2|447=D|452=3|802=1|523=S3|803=1|"
        let timestamps = "768=2|769=20240101-00:00:00.000|770=1|769=20240101-00:00:00.001|770=2|"
        let legs = "555=2|600=L1|624=1|539=1|524=N1|525=D|538=1|600=L2|624=2|539=2|524=N2|525=D|524=N3|525=D|"
        let message = try FIXCodec.decode(frame(head + parties + timestamps + legs))
        #expect(message[17] == "E1" && message[32] == "5")
        let partyGroups = message.groups(453)
        #expect(partyGroups.count == 2)
        #expect(partyGroups[0].map(\.tag) == [448, 447, 452, 802, 523, 803, 523, 803])
        #expect(partyGroups[1].map(\.value) == ["P2", "D", "3", "1", "S3", "1"])
        #expect(message.groups(768).count == 2)
        #expect(message.groups(555).map(\.count) == [6, 7])
        // The counts of nested groups are checked too.
        let badNested = parties.replacingOccurrences(of: "802=2|", with: "802=3|")
        #expect(decodeError(frame(head + badNested))?.kind == .incorrectGroupCount(tag: 802, declared: 3, actual: 2))
        let undelimitedNested = "453=1|448=P1|447=D|452=1|802=1|803=1|"
        #expect(decodeError(frame(head + undelimitedNested))?.kind == .incorrectGroupCount(tag: 802, declared: 1, actual: 0))
        // A tag repeated outside every group is still a duplicate, and an instance too many is a wrong count.
        #expect(decodeError(frame(head + parties + "17=E2|"))?.kind == .duplicateTag(17))
        #expect(decodeError(frame(head + timestamps + "769=20240101-00:00:00.002|"))?.kind == .incorrectGroupCount(tag: 768, declared: 2, actual: 3))
    }

    @Test("a data field's length that is negative, past the message or beyond Int is refused, not a crash")
    func impossibleDataLengths() {
        let head = "35=0|49=FG|56=EX|34=2|52=20240101-00:00:00.000|"
        #expect(decodeError(frame(head + "95=-100000|96=x|"))?.kind == .incorrectValueFormat(tag: 95, value: "-100000"))
        #expect(decodeError(frame(head + "95=-4|96=abc|"))?.kind == .incorrectValueFormat(tag: 95, value: "-4"))
        #expect(decodeError(frame(head + "212=-1|213=<a/>|"))?.kind == .incorrectValueFormat(tag: 212, value: "-1"))
        // A length running past the body (however far: an overflow crashed) falls back to the field's end.
        for length in ["50", "9223372036854775807", "99999999999999999999999"] {
            #expect((try? FIXCodec.decode(frame(head + "95=\(length)|96=x|")))?[96] == "x", "95=\(length)")
        }
    }

    @Test func dataFieldsMayHoldSeparators() throws {
        let inner = "35=0|49=FG|56=EX|34=2|52=20240101-00:00:00.000|95=3|96=a|b|"
        let message = try FIXCodec.decode(frame(inner))
        #expect(message[96] == "a\u{01}b")
        #expect(try FIXCodec.encode(message) == frame(inner))
    }
}

@Suite("FIX frame decoder", .timeLimit(.minutes(5)))
struct FrameDecoderTests {
    let one = frame("35=0|49=FG|56=EX|34=2|52=20240101-00:00:00.000|")
    let two = frame("35=1|49=FG|56=EX|34=3|52=20240101-00:00:00.000|112=T|")

    @Test func splitsAStreamFedByteByByte() throws {
        var decoder = FIXFrameDecoder()
        var frames: [[UInt8]] = []
        for byte in one + two {
            decoder.append([byte])
            while let next = try decoder.next() { frames.append(next) }
        }
        #expect(frames == [one, two])
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func splitsSeveralFramesInOneChunk() throws {
        var decoder = FIXFrameDecoder()
        decoder.append(one + two + one.prefix(10))
        #expect(try decoder.next() == one)
        #expect(try decoder.next() == two)
        #expect(try decoder.next() == nil)
        decoder.append(one.dropFirst(10))
        #expect(try decoder.next() == one)
    }

    @Test func skipsGarbageAndResynchronises() throws {
        var decoder = FIXFrameDecoder()
        decoder.append(Array("garbage".utf8) + one)
        #expect(throws: FIXDecodeError(.missingBeginString)) { try decoder.next() }
        #expect(try decoder.next() == one)
    }

    @Test func wrongBodyLengthIsDroppedUpToTheNextFrame() throws {
        var decoder = FIXFrameDecoder()
        var bad = one
        let text = wire(bad).replacingOccurrences(of: "9=47|", with: "9=40|")
        bad = bytes(text)
        decoder.append(bad + two)
        #expect(throws: FIXDecodeError(.bodyLengthMismatch(declared: 40, actual: -1))) { try decoder.next() }
        #expect(try decoder.next() == two)
    }

    @Test func refusesHugeFrames() {
        var decoder = FIXFrameDecoder(maximumFrameLength: 100)
        decoder.append(bytes("8=FIX.4.4|9=999999|35=0|"))
        #expect(throws: FIXDecodeError(.messageTooLong(999999 + 7 + 19))) { try decoder.next() }
    }
}
