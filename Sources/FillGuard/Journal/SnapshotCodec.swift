#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FillGuardCore

/// Snapshots are a version byte followed by the machine's image as JSON (written rarely, read
/// once at start; readable by a person in an emergency).
enum SnapshotCodec {
    static let version: UInt8 = 1

    static func encode(_ image: SymbolStateMachine.Image) throws -> [UInt8] {
        [version] + Array(try JSONEncoder().encode(image))
    }

    static func decode(_ payload: [UInt8]) throws(JournalError) -> SymbolStateMachine.Image {
        guard let first = payload.first else { throw JournalError(.corrupted, "an empty snapshot") }
        guard first <= version else {
            throw JournalError(.unsupportedVersion, "snapshot format \(first) is newer than this FillGuard reads (\(version)); upgrade FillGuard")
        }
        do {
            return try JSONDecoder().decode(SymbolStateMachine.Image.self, from: Data(payload.dropFirst()))
        } catch {
            throw JournalError(.corrupted, "a snapshot could not be decoded: \(error)")
        }
    }
}
