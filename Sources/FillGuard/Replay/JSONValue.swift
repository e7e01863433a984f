import FillGuardCore
import Foundation

/// A parsed JSON value, so trace lines can be read field by field with precise messages.
enum JSONValue: Decodable, Sendable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    /// Parses one line of JSON text.
    static func parse(_ text: String) throws(InputError) -> JSONValue {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        } catch {
            throw InputError(.malformed, "not valid JSON")
        }
        if let problem = StrictJSON.problem(in: text) {
            throw InputError(.malformed, "not valid JSON: \(problem)")
        }
        return value
    }
}
