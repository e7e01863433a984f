import Foundation
import GRDB

/// Strict reads of a journal row's columns. GRDB's typed subscripts stop the process on a NULL
/// or a value of another type; a damaged file must be reported as corruption instead.
enum StoredValue {
    /// A column that does not hold what a journal writes there.
    struct Damaged: Error, CustomStringConvertible {
        /// What was found where ("frames.symbol is NULL").
        var description: String
    }

    /// The text in column `index`.
    static func text(_ row: Row, _ index: Int, _ column: String) throws(Damaged) -> String {
        let value: DatabaseValue = row[index]
        guard case .string(let text) = value.storage else { throw Damaged(description: "\(column) is \(describe(value)), not text") }
        return text
    }

    /// The integer in column `index`.
    static func integer(_ row: Row, _ index: Int, _ column: String) throws(Damaged) -> Int64 {
        let value: DatabaseValue = row[index]
        guard case .int64(let integer) = value.storage else { throw Damaged(description: "\(column) is \(describe(value)), not an integer") }
        return integer
    }

    /// The integer in column `index`, or nil for NULL.
    static func optionalInteger(_ row: Row, _ index: Int, _ column: String) throws(Damaged) -> Int64? {
        let value: DatabaseValue = row[index]
        if value.isNull { return nil }
        return try integer(row, index, column)
    }

    /// The bytes in column `index`.
    static func blob(_ row: Row, _ index: Int, _ column: String) throws(Damaged) -> Data {
        let value: DatabaseValue = row[index]
        guard case .blob(let data) = value.storage else { throw Damaged(description: "\(column) is \(describe(value)), not bytes") }
        return data
    }

    private static func describe(_ value: DatabaseValue) -> String {
        switch value.storage {
        case .null: "NULL"
        case .int64(let integer): "the integer \(integer)"
        case .double(let double): "the real \(double)"
        case .string(let text): "the text '\(text.prefix(40))'"
        case .blob(let data): "\(data.count) bytes"
        }
    }
}
