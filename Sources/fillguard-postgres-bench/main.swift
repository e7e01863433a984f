import FillGuard
import FillGuardPostgres
import Foundation

// Durable append throughput of the PostgreSQL journal store on the server that
// `scripts/postgres-start` prints (FILLGUARD_PG_HOST, _PORT, _USER, _DATABASE, optional _PASSWORD).
// Usage: fillguard-postgres-bench [batch size] [batches per run] [runs] [payload bytes] [fsync|off]
let environment = ProcessInfo.processInfo.environment
let names = ["FILLGUARD_PG_HOST", "FILLGUARD_PG_PORT", "FILLGUARD_PG_USER", "FILLGUARD_PG_DATABASE"]
let missing = names.filter { (environment[$0] ?? "").isEmpty }
guard missing.isEmpty, let port = Int(environment["FILLGUARD_PG_PORT"] ?? "") else {
    FileHandle.standardError.write(Data("fillguard-postgres-bench: set \(missing.isEmpty ? "FILLGUARD_PG_PORT to a number" : missing.joined(separator: ", ")); start a server with: eval \"$(scripts/postgres-start)\"\n".utf8))
    exit(2)
}
let arguments = CommandLine.arguments.dropFirst().map { $0 }
func number(_ index: Int, _ fallback: Int) -> Int { arguments.count > index ? Int(arguments[index]) ?? fallback : fallback }
let durability = arguments.count > 4 ? JournalDurability(rawValue: arguments[4]) ?? .fsync : .fsync
let configuration = PostgresJournalStore.Configuration(
    host: environment["FILLGUARD_PG_HOST"]!, port: port, username: environment["FILLGUARD_PG_USER"]!,
    password: environment["FILLGUARD_PG_PASSWORD"], database: environment["FILLGUARD_PG_DATABASE"]!,
    namespace: "bench-\(UUID().uuidString.lowercased())", durability: durability)
do {
    let result = try await measureAppendThroughput(configuration: configuration, batchSize: number(0, 1_000),
                                                   batches: number(1, 20), runs: number(2, 5), payloadBytes: number(3, 60))
    print(result)
} catch {
    FileHandle.standardError.write(Data("fillguard-postgres-bench: \(error)\n".utf8))
    exit(1)
}
