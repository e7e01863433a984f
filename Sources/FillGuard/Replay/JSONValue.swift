import FillGuardCore
import Foundation

/// A parsed JSON value, so trace lines can be read field by field with precise messages.
enum JSONValue: Decodable, Sendable {
    case string(String)
    /// A number as a Double, and exactly as written when a `Decimal` holds it (nil beyond its
    /// range): a Double rounds `0.99999999999999999` to 1, which a whole-number field must refuse.
    case number(Double, exactly: Decimal?)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value, exactly: try? container.decode(Decimal.self)) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    /// Parses one line of JSON text.
    static func parse(_ text: String) throws(InputError) -> JSONValue {
        // JSON text never holds a raw control byte (white space aside). A NUL, above all, would
        // make the decoder take the line for UTF-16 or UTF-32 and read it so: a trace is UTF-8.
        if let byte = text.utf8.first(where: { $0 < 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }) {
            let looksWide = text.utf8.count(where: { $0 == 0 }) * 4 >= text.utf8.count
            let hint = looksWide ? " (a trace is UTF-8 text: is the line UTF-16 or UTF-32?)" : ""
            throw InputError(.malformed, "not valid JSON: a raw control character (byte 0x\(String(byte, radix: 16, uppercase: true).leftPadded(to: 2)))\(hint)")
        }
        let value: JSONValue
        do {
            do {
                value = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
            } catch {
                // Foundation's decoder refuses two forms of valid JSON numbers that are zero: a
                // zero with an exponent ("0e5") and one too small for a Double ("1e-400").
                // Written as "0" they read as the zero they are.
                guard let zeroed = Self.zeroingExponentNumbers(text) else { throw error }
                value = try JSONDecoder().decode(JSONValue.self, from: Data(zeroed.utf8))
            }
        } catch {
            // The decoder refuses nesting past 512 levels: say so rather than call it invalid.
            if nestingDepth(of: text) >= 512 { throw InputError(.malformed, "JSON nested more than 511 levels deep") }
            // Foundation's reason, where it gives one ("Invalid value around character 5.",
            // "Number 1e999 is not representable in Swift.").
            // The decoder keeps it to itself; the serialization parser, asked again, says it.
            if let detail = Self.parserReason(Data(text.utf8)) {
                throw InputError(.malformed, "not valid JSON (\(detail.hasSuffix(".") ? String(detail.dropLast()) : detail))")
            }
            throw InputError(.malformed, "not valid JSON")
        }
        if let problem = StrictJSON.problem(in: text) {
            throw InputError(.malformed, "not valid JSON: \(problem)")
        }
        return value
    }

    /// Why Foundation's JSON parser refuses `data`, in its words (nil if it takes it).
    private static func parserReason(_ data: Data) -> String? {
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            return nil
        } catch {
            let detail = (error as NSError).userInfo["NSDebugDescription"] as? String
            return detail?.isEmpty == false ? detail : nil
        }
    }

    /// `text` with every number outside strings that has an exponent and is zero as a Double
    /// written as `0`; nil when there is none.
    private static func zeroingExponentNumbers(_ text: String) -> String? {
        let bytes = Array(text.utf8)
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count)
        var changed = false
        var inString = false
        var escaped = false
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                result.append(byte)
                index += 1
                continue
            }
            if byte == UInt8(ascii: "\"") {
                inString = true
                result.append(byte)
                index += 1
                continue
            }
            guard byte == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else {
                result.append(byte)
                index += 1
                continue
            }
            let start = index
            while index < bytes.count, "+-.0123456789eE".utf8.contains(bytes[index]) { index += 1 }
            let token = bytes[start..<index]
            if Self.isJSONNumberWithExponent(token), let number = Double(String(decoding: token, as: UTF8.self)), number == 0 {
                result.append(UInt8(ascii: "0"))
                changed = true
            } else {
                result.append(contentsOf: token)
            }
        }
        return changed ? String(decoding: result, as: UTF8.self) : nil
    }

    /// Whether `token` is a JSON number with an exponent: `-?(0|[1-9][0-9]*)(\.[0-9]+)?[eE][+-]?[0-9]+`
    /// (what Swift's `Double` reads also takes `00e5` or `0.e5`, which JSON does not).
    private static func isJSONNumberWithExponent(_ token: ArraySlice<UInt8>) -> Bool {
        var index = token.startIndex
        func digits() -> Int {
            let start = index
            while index < token.endIndex, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(token[index]) { index += 1 }
            return index - start
        }
        if index < token.endIndex, token[index] == UInt8(ascii: "-") { index += 1 }
        guard index < token.endIndex else { return false }
        if token[index] == UInt8(ascii: "0") {
            index += 1
        } else if digits() == 0 {
            return false
        }
        if index < token.endIndex, token[index] == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { return false }
        }
        guard index < token.endIndex, token[index] == UInt8(ascii: "e") || token[index] == UInt8(ascii: "E") else { return false }
        index += 1
        if index < token.endIndex, token[index] == UInt8(ascii: "+") || token[index] == UInt8(ascii: "-") { index += 1 }
        return digits() > 0 && index == token.endIndex
    }

    /// The deepest nesting of arrays and objects in `text`, outside strings.
    private static func nestingDepth(of text: String) -> Int {
        var depth = 0
        var deepest = 0
        var inString = false
        var escaped = false
        for byte in text.utf8 {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"): depth += 1; deepest = max(deepest, depth)
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return deepest
    }
}

private extension String {
    /// The text with zeros in front, to `width` characters.
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
