import Foundation

/// Finds a key named twice in one JSON object, which `JSONDecoder` would silently settle (the first wins).
///
/// A trace line such as `{"quantity":"100","quantity":"1"}` is ambiguous, so replay refuses it rather
/// than guess. The scan runs on text the decoder has already accepted, so it only follows the structure.
enum DuplicateKeys {
    /// The first key that appears twice within one object of `text` (valid JSON), or nil.
    static func first(in text: String) -> String? {
        let bytes = Array(text.utf8)
        // One entry per open container: the keys seen so far for an object, nil for an array.
        var containers: [Set<String>?] = []
        var expectingKey = false
        var index = 0
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "{"):
                containers.append([])
                expectingKey = true
            case UInt8(ascii: "["):
                containers.append(nil)
                expectingKey = false
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
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
                    if !keys.insert(key).inserted { return key }
                    containers.append(keys)
                }
                expectingKey = false
                index = end
            default:
                break
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
