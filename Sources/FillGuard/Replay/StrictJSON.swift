import Foundation

/// What `JSONDecoder` lets through that a trace line must not have: a key named twice in one
/// object (the decoder silently keeps the first) and a comma before a closing bracket.
///
/// `{"quantity":"100","quantity":"1"}` is ambiguous and `{"quantity":"100",}` is not JSON, so
/// replay refuses both rather than guess. The scan runs on text the decoder has already accepted,
/// so it only follows the structure.
enum StrictJSON {
    /// Why `text` (which the decoder accepted) is still not a well-formed trace line; nil if it is.
    static func problem(in text: String) -> String? {
        let bytes = Array(text.utf8)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { return "a byte-order mark starts the line (only the file may start with one)" }
        // One entry per open container: the keys seen so far for an object, nil for an array.
        var containers: [Set<String>?] = []
        var expectingKey = false
        var previous: UInt8 = 0 // the last byte outside strings that is not white space
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "{"):
                containers.append([])
                expectingKey = true
            case UInt8(ascii: "["):
                containers.append(nil)
                expectingKey = false
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if previous == UInt8(ascii: ",") { return "a comma before '\(Character(Unicode.Scalar(byte)))'" }
                if !containers.isEmpty { containers.removeLast() }
                expectingKey = false
            case UInt8(ascii: ","):
                expectingKey = containers.last.map { $0 != nil } ?? false
            case UInt8(ascii: "\""):
                let start = index + 1
                var end = start
                var escaped = false
                while end < bytes.count, bytes[end] != UInt8(ascii: "\"") {
                    if bytes[end] == UInt8(ascii: "\\") { escaped = true; end += 1 }
                    end += 1
                }
                if expectingKey, let last = containers.last, var keys = last {
                    containers.removeLast()
                    let raw = bytes[start..<min(end, bytes.count)]
                    let key = escaped ? unescaped(raw) : String(decoding: raw, as: UTF8.self)
                    if !keys.insert(key).inserted { return "the key '\(key)' appears twice in one object" }
                    containers.append(keys)
                }
                expectingKey = false
                index = end
            default:
                break
            }
            if byte != UInt8(ascii: " "), byte != UInt8(ascii: "\t"), byte != UInt8(ascii: "\n"), byte != UInt8(ascii: "\r") {
                previous = byte
            }
            index += 1
        }
        return nil
    }

    /// A key written with escapes ("\u0071uantity"), read as the decoder reads it.
    private static func unescaped(_ raw: ArraySlice<UInt8>) -> String {
        let quoted = Data([UInt8(ascii: "\"")] + raw + [UInt8(ascii: "\"")])
        return (try? JSONDecoder().decode(String.self, from: quoted)) ?? String(decoding: raw, as: UTF8.self)
    }
}
