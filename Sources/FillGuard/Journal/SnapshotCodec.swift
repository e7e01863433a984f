#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FillGuardCore

/// A snapshot is a version byte, the machine's image as JSON (positions and orders: small, and
/// readable by a person in an emergency), then the applied execution ids in the journal's
/// compact binary form (the large part: one per fill ever applied).
enum SnapshotCodec {
    static let version: UInt8 = 1

    static func encode(_ image: SymbolStateMachine.Image) throws -> [UInt8] {
        let json = try JSONEncoder().encode(image)
        var writer = ByteWriter(capacity: json.count + image.executionIDs.count * 16 + 16)
        writer.write(version)
        writer.write(varint: UInt64(json.count))
        writer.bytes.append(contentsOf: json)
        writer.write(varint: UInt64(image.executionIDs.count))
        for id in image.executionIDs { writer.write(id.rawValue) }
        return writer.bytes
    }

    static func decode(_ payload: [UInt8]) throws(JournalError) -> SymbolStateMachine.Image {
        guard let first = payload.first else { throw JournalError(.corrupted, "an empty snapshot") }
        guard first <= version else {
            throw JournalError(.unsupportedVersion, "snapshot format \(first) is newer than this FillGuard reads (\(version)); upgrade FillGuard")
        }
        var reader = ByteReader(payload)
        let json: ArraySlice<UInt8>
        var executions: Set<ExecutionID> = []
        do throws(ByteReader.Damaged) {
            _ = try reader.byte()
            let length = Int(clamping: try reader.varint())
            json = try reader.bytes(length)
            let count = Int(clamping: try reader.varint())
            guard count <= payload.count else { throw ByteReader.Damaged() }
            executions.reserveCapacity(count)
            for _ in 0..<count { executions.insert(ExecutionID(try reader.string())) }
            guard reader.isAtEnd else { throw ByteReader.Damaged() }
        } catch {
            throw JournalError(.corrupted, "a snapshot is cut short or damaged")
        }
        do {
            var image = try JSONDecoder().decode(SymbolStateMachine.Image.self, from: Data(json))
            image.executionIDs = executions
            return image
        } catch {
            throw JournalError(.corrupted, "a snapshot could not be decoded: \(error)")
        }
    }
}
