import FillGuard
import FillGuardCore
import Logging
import PostgresNIO
import Synchronization

/// The shared journal store: tables in a PostgreSQL database (through postgres-nio), so that
/// several processes or machines can keep their journals in one server. Each store writes
/// under its own `namespace` (a column in every table), so two managers never mix records.
///
/// It mirrors `SQLiteJournalStore`: each appended batch is one transaction; a
/// snapshot replaces the symbol's previous one and deletes the records it covers; `load` hands
/// the rows to `JournalAssembly` and deletes a torn tail. With `fsync` durability a batch counts
/// as written once PostgreSQL has flushed its commit (the store's session sets
/// `synchronous_commit = on`, whatever the server's default); with `off` the commit returns before
/// that flush (`synchronous_commit = off`).
///
/// One writer per namespace: an open store holds a session-level advisory lock on its namespace
/// (on a connection of its own, for as long as it is open), and opening a namespace that another
/// store holds, in this process or any other, fails with `inUse`. The server releases the lock
/// when the holder closes or its connection dies (a killed process included). Batches are written
/// on that same connection, so a store that lost its lock cannot write: two writers never interleave.
/// Loads and erases run on it too, one call at a time, and every call waits for the server's
/// answer for a bounded time (`writeTimeout`, `answerTimeout`): a hung server fails the call
/// with `storage` instead of stalling the manager for ever.
public final class PostgresJournalStore: JournalStore {
    /// The format this version writes and reads (per namespace, in the meta table).
    public static let formatVersion = 1

    /// Where the server is and how this store uses it.
    public struct Configuration: Sendable {
        /// The server's host name or address.
        public var host: String
        /// The server's TCP port.
        public var port: Int
        /// The role to log in as.
        public var username: String
        /// The role's password; nil for trust or peer authentication.
        public var password: String?
        /// The database holding the journal tables.
        public var database: String
        /// Which journal in the database this store reads and writes: letters, digits, `_`, `-`
        /// and `.`, 1 to 63 characters.
        public var namespace: String
        /// When an appended batch counts as written.
        public var durability: JournalDurability
        /// How long opening a TCP connection may take (timeouts here are brought into
        /// `.zero ... Duration.longestWait`: a "for ever" would trap in the clock's arithmetic).
        public var connectTimeout: Duration { didSet { connectTimeout = connectTimeout.clampedToWait } }
        /// How long an append may wait for the server's answer. Past it (a hung server, a
        /// half-open connection) the store gives up its lock's connection and fails the append
        /// with `storage` (the batch may or may not be stored): the manager stops applying and
        /// refuses inputs, instead of waiting without end; restart to recover.
        public var writeTimeout: Duration { didSet { writeTimeout = writeTimeout.clampedToWait } }
        /// How long opening the store, a `load` or an `erase` may wait for the server's answers
        /// (a load of a long journal has much to read). Past it the store gives up its connection
        /// and the call fails with `storage`: open a new store to recover.
        public var answerTimeout: Duration { didSet { answerTimeout = answerTimeout.clampedToWait } }

        /// A configuration; the password defaults to none, durability to `fsync`.
        public init(host: String, port: Int = 5432, username: String, password: String? = nil, database: String,
                    namespace: String, durability: JournalDurability = .fsync,
                    connectTimeout: Duration = .seconds(10), writeTimeout: Duration = .seconds(10),
                    answerTimeout: Duration = .seconds(60)) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
            self.namespace = namespace
            self.durability = durability
            self.connectTimeout = connectTimeout.clampedToWait
            self.writeTimeout = writeTimeout.clampedToWait
            self.answerTimeout = answerTimeout.clampedToWait
        }

        /// Kept so that code written for the pooled store still builds: the store now uses one
        /// connection (the one holding the namespace's lock), so this is always 1 and setting it
        /// does nothing.
        @available(*, deprecated, message: "the store uses one connection, the one holding the namespace's lock")
        public var maximumConnections: Int {
            get { 1 }
            set { _ = newValue }
        }

        /// A configuration, as the other initializer makes it, for code written for the pooled
        /// store: `maximumConnections` is ignored (the store uses one connection).
        @available(*, deprecated, message: "the store uses one connection, the one holding the namespace's lock: drop maximumConnections")
        public init(host: String, port: Int = 5432, username: String, password: String? = nil, database: String,
                    namespace: String, durability: JournalDurability = .fsync,
                    maximumConnections: Int, connectTimeout: Duration = .seconds(10), writeTimeout: Duration = .seconds(10)) {
            self.init(host: host, port: port, username: username, password: password, database: database, namespace: namespace,
                      durability: durability, connectTimeout: connectTimeout, writeTimeout: writeTimeout)
        }

        /// "user@host:port/database (journal namespace)", for messages.
        public var location: String { "\(username)@\(host):\(port)/\(database) (journal \"\(namespace)\")" }
    }

    /// The tables every namespace shares (the namespace is a column).
    enum Table {
        static let meta = "fillguard_journal_meta"
        static let records = "fillguard_journal_records"
        static let snapshots = "fillguard_journal_snapshots"
    }

    /// This store's configuration.
    public let configuration: Configuration
    private let logger: Logger
    private let closed = Mutex(false)
    private let lockConnection: PostgresConnection
    /// Whether a call (append, load or erase) is using the lock's connection: they never overlap.
    private let busy = Mutex(false)
    /// Per symbol, the sequence of the newest record written: each new record names it
    /// (`prev_seq`), so a record missing from the middle of a symbol's journal is found on load.
    private let lastWritten = Mutex<[String: Int64]>([:])

    /// Connects, creates the tables if needed and checks the namespace's format. Throws `storage`
    /// when the server cannot be reached or used (the message names host, port and database),
    /// `unsupportedVersion` for a namespace written by a newer FillGuard.
    public init(configuration: Configuration, logger: Logger? = nil) async throws(JournalError) {
        try Self.validate(namespace: configuration.namespace)
        self.configuration = configuration
        self.logger = logger ?? Logger(label: "fillguard.journal.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
        guard (1...65_535).contains(configuration.port) else {
            throw JournalError(.storage, "the PostgreSQL journal server's port \(configuration.port) is not a TCP port (1 to 65535)")
        }
        // A direct first connection gives a prompt, specific error when the server is unreachable
        // (the pool would retry in the background and report only a tripped circuit breaker).
        // The namespace's lock first: a store refused as `inUse` writes nothing, not even tables.
        let lockConnection = try await Self.lockNamespace(configuration, logger: self.logger)
        self.lockConnection = lockConnection
        let chain: [String: Int64]
        do {
            try await Self.prepare(configuration, logger: self.logger)
            let namespace = configuration.namespace
            let logger = self.logger
            chain = try await Self.bounded(configuration, "reading where each symbol's journal ends", on: lockConnection) {
                try await Self.lastWrittenSequences(namespace, on: lockConnection, logger: logger)
            }
        } catch {
            // Give the namespace's lock back: this store never opened.
            try? await lockConnection.close()
            throw error
        }
        lastWritten.withLock { $0 = chain }
    }

    /// Appends a batch in one transaction, on the connection that holds the namespace's lock (so
    /// a store that lost its lock cannot write). Appends must not overlap (`Journal` never
    /// overlaps them); an overlapping one fails with `storage` and writes nothing.
    public func append(_ batch: [JournalRecord]) async throws(JournalError) {
        try checkOpen()
        guard !batch.isEmpty else { return }
        try beginCall("an append")
        defer { endCall() }
        if lockConnection.isClosed {
            throw JournalError(.storage, "lost the lock on the PostgreSQL journal at \(configuration.location) (its connection closed); nothing more is written: restart to recover")
        }
        let namespace = configuration.namespace
        let logger = self.logger
        // The chain as this transaction leaves it; kept only once it has committed.
        var chain = lastWritten.withLock { $0 }
        var pending: [(record: JournalRecord, previous: Int64)] = []
        var steps: [(records: [(record: JournalRecord, previous: Int64)], snapshot: JournalRecord?)] = []
        for record in batch {
            if record.kind == .snapshot {
                steps.append((pending, record))
                pending.removeAll(keepingCapacity: true)
            } else {
                pending.append((record, chain[record.symbol.name] ?? 0))
                chain[record.symbol.name] = Int64(bitPattern: record.sequence)
            }
        }
        steps.append((pending, nil))
        let plan = steps
        let connection = lockConnection
        let answered: Bool
        do {
            answered = try await Self.answered(within: configuration.writeTimeout, closing: connection) {
                try await connection.withTransaction(logger: logger) { connection in
                    for step in plan {
                        try await Self.insert(step.records, namespace: namespace, on: connection, logger: logger)
                        if let snapshot = step.snapshot {
                            try await Self.replaceSnapshot(snapshot, namespace: namespace, on: connection, logger: logger)
                        }
                    }
                }
            }
            let committed = chain
            if answered { lastWritten.withLock { $0 = committed } }
        } catch {
            if lockConnection.isClosed {
                throw JournalError(.storage, "lost the lock on the PostgreSQL journal at \(configuration.location) (its connection closed while writing: the batch may or may not be stored); restart to recover: \(Self.describe(error))")
            }
            throw failure("cannot write to", error)
        }
        guard answered else {
            throw JournalError(.storage, "no answer from the PostgreSQL journal at \(configuration.location) within \(configuration.writeTimeout) (a hung server or connection); the lock's connection is closed (the batch may or may not be stored): restart to recover")
        }
    }

    /// Runs `work`; if it has not finished within `timeout`, closes `connection` (which ends the
    /// work's queries) and returns false once it has.
    private static func answered(within timeout: Duration, closing connection: PostgresConnection,
                                 _ work: @escaping @Sendable () async throws -> Void) async throws -> Bool {
        try await answer(within: timeout, closing: connection, work) != nil
    }

    /// Runs `work` and returns its result; if it has not finished within `timeout`, closes
    /// `connection` (which ends the work's queries) and returns nil. It returns then even if the
    /// work has not ended yet (its end is not awaited: a query that the closed connection never
    /// fails cannot hold the caller). A cancelled caller closes `connection` too, and gets a
    /// `CancellationError` at once.
    private static func answer<Result: Sendable>(within timeout: Duration, closing connection: PostgresConnection,
                                                 _ work: @escaping @Sendable () async throws -> Result) async throws -> Result? {
        let outcome = FirstOutcome<Result?>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                outcome.await(continuation)
                // Cancelled before it began: nothing is started.
                guard !outcome.isClaimed else { return }
                let timer = Task {
                    // Cancelled once the work is done.
                    guard (try? await Task.sleep(for: timeout)) != nil, outcome.claim() else { return }
                    try? await connection.close()
                    outcome.resume(with: .success(nil))
                }
                Task {
                    let result: Swift.Result<Result?, any Error>
                    do {
                        result = .success(try await work())
                    } catch {
                        result = .failure(error)
                    }
                    timer.cancel()
                    if outcome.claim() { outcome.resume(with: result) }
                }
            }
        } onCancel: {
            // The caller gave up: its work's connection goes (the work's queries end with it),
            // and it is told so at once.
            guard outcome.claim() else { return }
            Task {
                try? await connection.close()
                outcome.resume(with: .failure(CancellationError()))
            }
        }
    }

    /// Runs `work` on `connection` within the configuration's `answerTimeout`: a server that has
    /// not answered by then fails it with `storage` (the connection closed); a failing query
    /// with `storage` naming `what`.
    private static func bounded<Result: Sendable>(_ configuration: Configuration, _ what: String, on connection: PostgresConnection,
                                                  _ work: @escaping @Sendable () async throws -> Result) async throws(JournalError) -> Result {
        let result: Result?
        do {
            result = try await answer(within: configuration.answerTimeout, closing: connection, work)
        } catch let error as JournalError {
            throw error
        } catch {
            throw JournalError(.storage, "the PostgreSQL journal at \(configuration.location) failed while \(what): \(describe(error))")
        }
        guard let result else {
            throw JournalError(.storage, "no answer from the PostgreSQL journal at \(configuration.location) within \(configuration.answerTimeout) while \(what) (a hung server or connection); its connection is closed: open a new store to recover")
        }
        return result
    }

    /// What a load read from the two tables, in one consistent view.
    private struct LoadedRows: Sendable {
        var rows: [JournalAssembly.Row]
        var snapshots: [JournalRecord]
        var links: [(id: Int64, symbol: Symbol, sequence: Int64, previous: Int64?)]
    }

    /// Loads per the contract; a torn tail is deleted from the table with a notice.
    public func load(notices: @Sendable (String) -> Void) async throws(JournalError) -> JournalContents {
        try checkOpen()
        try checkLock("nothing is read")
        try beginCall("a load")
        defer { endCall() }
        let namespace = configuration.namespace
        let logger = self.logger
        let connection = lockConnection
        let read = try await Self.bounded(configuration, "loading", on: connection) {
            try await connection.withTransaction(logger: logger) { connection in
                // One consistent view of both tables.
                try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", logger: logger)
                var rows: [JournalAssembly.Row] = []
                var links: [(id: Int64, symbol: Symbol, sequence: Int64, previous: Int64?)] = []
                let recordRows = try await connection.query(
                    "SELECT id, symbol, seq, kind, payload, crc, prev_seq FROM fillguard_journal_records WHERE namespace = \(namespace) ORDER BY id",
                    logger: logger)
                for try await (id, symbol, sequence, kind, payload, crc, previous) in recordRows.decode((Int64, String, Int64, Int16, ByteBuffer, Int64, Int64?).self) {
                    links.append((id, Symbol(symbol), sequence, previous))
                    let known = JournalRecord.Kind(rawValue: UInt8(clamping: kind))
                    let bytes = Array(payload.readableBytesView)
                    // A kind no FillGuard writes is damage: kept with a checksum that fails.
                    let checksum = known == nil ? ~CRC32.checksum(bytes) : UInt32(truncatingIfNeeded: crc)
                    rows.append(JournalAssembly.Row(position: id, record: JournalRecord(
                        symbol: Symbol(symbol), sequence: UInt64(bitPattern: sequence), kind: known ?? .input,
                        payload: bytes, checksum: checksum)))
                }
                var snapshots: [JournalRecord] = []
                let snapshotRows = try await connection.query(
                    "SELECT symbol, seq, payload, crc FROM fillguard_journal_snapshots WHERE namespace = \(namespace)",
                    logger: logger)
                for try await (symbol, sequence, payload, crc) in snapshotRows.decode((String, Int64, ByteBuffer, Int64).self) {
                    let bytes = Array(payload.readableBytesView)
                    snapshots.append(JournalRecord(
                        symbol: Symbol(symbol), sequence: UInt64(bitPattern: sequence), kind: .snapshot,
                        payload: bytes, checksum: SnapshotCheck.checksum(stored: crc, payload: bytes, sequence: UInt64(bitPattern: sequence))))
                }
                return LoadedRows(rows: rows, snapshots: snapshots, links: links)
            }
        }
        let (rows, snapshots, links) = (read.rows, read.snapshots, read.links)
        do {
            var chain = JournalChain()
            for (index, link) in links.enumerated() {
                try chain.add(frame: link.id, symbol: link.symbol, records: [rows[index].record], last: link.sequence, previous: link.previous)
            }
            try chain.check(snapshots: snapshots)
        } catch {
            throw JournalError(.corrupted, "the PostgreSQL journal at \(configuration.location) has a broken chain of records: \(error.description); it cannot be trusted. Restore it from a backup, or erase the namespace to start empty and let reconciliation rebuild from the broker")
        }
        let result = try JournalAssembly.assemble(rows: rows, snapshots: snapshots, notices: notices)
        if let cut = result.truncateFrom {
            // On the lock's connection: a store that lost its lock deletes nothing.
            try checkLock("the torn tail is not dropped")
            let chain = try await Self.bounded(configuration, "dropping the torn tail", on: connection) {
                try await connection.query(
                    "DELETE FROM fillguard_journal_records WHERE namespace = \(namespace) AND id >= \(cut)",
                    logger: logger)
                return try await Self.lastWrittenSequences(namespace, on: connection, logger: logger)
            }
            lastWritten.withLock { $0 = chain }
        }
        return result.contents
    }

    /// Deletes this namespace's records and snapshots (its format row stays); other namespaces are
    /// untouched. The store stays open and usable, as if new.
    public func erase() async throws(JournalError) {
        try checkOpen()
        // On the lock's connection, as appends are: a store that lost its lock (the rightful
        // writer may be another store by now) erases nothing.
        try checkLock("nothing is erased")
        try beginCall("an erase")
        defer { endCall() }
        let namespace = configuration.namespace
        let logger = self.logger
        let connection = lockConnection
        try await Self.bounded(configuration, "erasing", on: connection) {
            try await connection.withTransaction(logger: logger) { connection in
                try await connection.query("DELETE FROM fillguard_journal_records WHERE namespace = \(namespace)", logger: logger)
                try await connection.query("DELETE FROM fillguard_journal_snapshots WHERE namespace = \(namespace)", logger: logger)
            }
        }
        lastWritten.withLock { $0 = [:] }
    }

    /// A store let go without `close()`: its connections are closed all the same (the
    /// namespace's lock goes with them), never leaked.
    deinit {
        guard !closed.withLock({ $0 }) else { return }
        // The connection is kept until its channel has closed: it may not go before that.
        let connection = lockConnection
        connection.close().whenComplete { _ in _ = connection }
    }

    /// Closes the store's connection (the namespace's lock goes with it). Calls after closing
    /// fail with `closed`.
    public func close() async {
        let wasClosed = closed.withLock { closed in
            defer { closed = true }
            return closed
        }
        guard !wasClosed else { return }
        try? await lockConnection.close()
    }

    // MARK: - Helpers

    /// Throws `storage` when the connection holding the namespace's lock has closed: the lock
    /// is gone, and another store may be the namespace's writer now.
    private func checkLock(_ consequence: String) throws(JournalError) {
        if lockConnection.isClosed {
            throw JournalError(.storage, "lost the lock on the PostgreSQL journal at \(configuration.location) (its connection closed); \(consequence): open a new store to recover")
        }
    }

    /// Marks the lock's connection as used by `what` until `endCall()`; throws `storage` when
    /// another call is using it (calls must come one at a time; `Journal` never overlaps them).
    private func beginCall(_ what: String) throws(JournalError) {
        let overlapping = busy.withLock { busy in
            defer { busy = true }
            return busy
        }
        if overlapping {
            throw JournalError(.storage, "\(what) on the PostgreSQL journal at \(configuration.location) overlapped another call; appends, loads and erases must come one at a time")
        }
    }

    /// Frees the lock's connection for the next call.
    private func endCall() {
        busy.withLock { $0 = false }
    }

    private func checkOpen() throws(JournalError) {
        if closed.withLock({ $0 }) {
            throw JournalError(.closed, "the PostgreSQL journal at \(configuration.location) is closed")
        }
    }

    private func failure(_ what: String, _ error: any Error) -> JournalError {
        JournalError(.storage, "\(what) the PostgreSQL journal at \(configuration.location): \(Self.describe(error))")
    }

    /// Checks that a namespace is usable: 1 to 63 of letters, digits, `_`, `-` and `.`.
    static func validate(namespace: String) throws(JournalError) {
        let allowed = namespace.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "_-.".unicodeScalars.contains(scalar))
        }
        guard !namespace.isEmpty, namespace.utf8.count <= 63, allowed else {
            throw JournalError(.storage, "the journal namespace \"\(namespace)\" is not valid: use 1 to 63 letters, digits, '_', '-' or '.'")
        }
    }

    /// Opens the connection that holds the namespace's advisory lock for the store's lifetime;
    /// throws `inUse` when another store holds it.
    private static func lockNamespace(_ configuration: Configuration, logger: Logger) async throws(JournalError) -> PostgresConnection {
        let connection = try await connect(configuration, id: 1, logger: logger)
        let namespace = configuration.namespace
        let acquired: Bool
        do {
            acquired = try await bounded(configuration, "locking the namespace", on: connection) {
                // A store closed a moment ago holds the lock until the server has ended its
                // session, which comes after the close returns: asked again a few times over half
                // a second.
                for attempt in 0..<Self.lockAttempts {
                    if attempt > 0 { try? await Task.sleep(for: .milliseconds(50)) }
                    let rows = try await connection.query(
                        "SELECT pg_try_advisory_lock(hashtextextended(\(namespace), \(Self.namespaceLockSeed)))", logger: logger)
                    var acquired = false
                    for try await value in rows.decode(Bool.self) { acquired = value }
                    if acquired {
                        // The session's commits wait for their flush (`fsync`) or not (`off`),
                        // whatever the server's, database's or role's default: a default of
                        // `off` or `local` would otherwise lose acknowledged batches to a crash
                        // of the server's machine (`local`: of a synchronous standby's). Every
                        // write goes through this connection.
                        if configuration.durability == .off {
                            try await connection.query("SET synchronous_commit = off", logger: logger)
                        } else {
                            // A stronger default (remote_write, remote_apply: a standby's too) is kept.
                            var current = ""
                            for try await value in try await connection.query("SHOW synchronous_commit", logger: logger).decode(String.self) { current = value }
                            if current == "off" || current == "local" {
                                try await connection.query("SET synchronous_commit = on", logger: logger)
                            }
                        }
                        // The server probes this connection when idle (TCP keepalive): a
                        // FillGuard killed, or cut off, holds the lock until the server finds
                        // its connection dead, about a minute instead of the system's two hours.
                        try await connection.query("SET tcp_keepalives_idle = 30", logger: logger)
                        try await connection.query("SET tcp_keepalives_interval = 10", logger: logger)
                        try await connection.query("SET tcp_keepalives_count = 3", logger: logger)
                        return true
                    }
                }
                return false
            }
        } catch {
            try? await connection.close()
            throw error
        }
        guard acquired else {
            let holder = (try? await bounded(configuration, "naming the lock's holder", on: connection) {
                try await Self.describeHolder(of: namespace, on: connection, logger: logger)
            }) ?? nil
            try? await connection.close()
            throw JournalError(.inUse, "the PostgreSQL journal at \(configuration.location) is open in another FillGuard (it holds the namespace's lock\(holder.map { ": \($0)" } ?? "")); one writer per namespace: stop the other, or use another namespace. A FillGuard killed or cut off a moment ago holds it until the server finds its connection gone (about a minute), or until pg_terminate_backend(its server process)")
        }
        return connection
    }

    /// Who holds a namespace's lock, as the server sees its session: server process, client,
    /// state and for how long; nil when no session is found (it has just let go).
    private static func describeHolder(of namespace: String, on connection: PostgresConnection, logger: Logger) async throws -> String? {
        let rows = try await connection.query("""
            SELECT a.pid, coalesce(host(a.client_addr), 'local socket'), coalesce(a.application_name, ''), coalesce(a.state, 'unknown'),
                   coalesce(extract(epoch FROM now() - a.state_change)::bigint, -1)
              FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
               AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(\(namespace), \(Self.namespaceLockSeed))
            """, logger: logger)
        var holder: String?
        for try await (pid, client, application, state, seconds) in rows.decode((Int32, String, String, String, Int64).self) {
            let name = application.isEmpty ? "" : " \"\(application.prefix(64))\""
            holder = "server process \(pid), client \(client)\(name), \(state)\(seconds >= 0 ? " for \(seconds) s" : "")"
        }
        return holder
    }

    /// A setting of the store's session (`SHOW name`), for tests.
    func sessionSetting(_ name: String) async throws -> String {
        guard name.allSatisfy({ $0.isLetter || $0 == "_" }) else { return "" }
        var value = ""
        for try await text in try await lockConnection.query(PostgresQuery(unsafeSQL: "SHOW \(name)"), logger: logger).decode(String.self) { value = text }
        return value
    }

    /// How many times opening asks for the namespace's lock before it reports `inUse`.
    static let lockAttempts = 10

    /// The seed of a namespace lock's key ("FGNS"): the key is the namespace's 64-bit hash with
    /// it (a 32-bit hash let two namespaces share a lock: the second was refused as in use).
    private static let namespaceLockSeed: Int64 = 0x4647_4E53

    /// One direct connection to the configured server.
    private static func connect(_ configuration: Configuration, id: Int, logger: Logger) async throws(JournalError) -> PostgresConnection {
        var connectionConfiguration = PostgresConnection.Configuration(
            host: configuration.host, port: configuration.port, username: configuration.username,
            password: configuration.password, database: configuration.database, tls: .disable)
        connectionConfiguration.options.connectTimeout = .nanoseconds(max(1, Int64(configuration.connectTimeout.components.seconds) * 1_000_000_000
            + configuration.connectTimeout.components.attoseconds / 1_000_000_000))
        do {
            return try await PostgresConnection.connect(configuration: connectionConfiguration, id: id, logger: logger)
        } catch {
            throw JournalError(.storage, "cannot connect to the PostgreSQL journal server at \(configuration.host):\(configuration.port), database \"\(configuration.database)\", as \"\(configuration.username)\": \(describe(error))")
        }
    }

    /// Connects once, creates the tables if they are missing and checks the namespace's format.
    private static func prepare(_ configuration: Configuration, logger: Logger) async throws(JournalError) {
        let connection = try await connect(configuration, id: 0, logger: logger)
        let namespace = configuration.namespace
        let stored: String?
        do {
            stored = try await bounded(configuration, "preparing its tables", on: connection) {
                try await connection.withTransaction(logger: logger) { connection in
                    // Serialises processes creating the tables at once (CREATE ... IF NOT EXISTS races).
                    try await connection.query("SELECT pg_advisory_xact_lock(\(Self.schemaLock))", logger: logger)
                    try await connection.query("""
                        CREATE TABLE IF NOT EXISTS fillguard_journal_meta (
                            namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                            PRIMARY KEY (namespace, key))
                        """, logger: logger)
                    try await connection.query("""
                        CREATE TABLE IF NOT EXISTS fillguard_journal_records (
                            id BIGSERIAL PRIMARY KEY, namespace TEXT NOT NULL, symbol TEXT NOT NULL,
                            seq BIGINT NOT NULL, kind SMALLINT NOT NULL, payload BYTEA NOT NULL, crc BIGINT NOT NULL)
                        """, logger: logger)
                    // The index and the column only when missing: even with IF NOT EXISTS, creating an
                    // index or altering the table takes a lock on it that waits behind any reader (a
                    // backup, say) and holds up every namespace's writes behind it.
                    let present = try await connection.query("""
                        SELECT (SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'fillguard_journal_records_by_symbol'),
                               (SELECT count(*) FROM information_schema.columns
                                WHERE table_schema = current_schema() AND table_name = 'fillguard_journal_records' AND column_name = 'prev_seq')
                        """, logger: logger)
                    var (hasIndex, hasColumn) = (false, false)
                    for try await (index, column) in present.decode((Int64, Int64).self) { (hasIndex, hasColumn) = (index > 0, column > 0) }
                    if !hasIndex {
                        try await connection.query(
                            "CREATE INDEX IF NOT EXISTS fillguard_journal_records_by_symbol ON fillguard_journal_records (namespace, symbol, seq)",
                            logger: logger)
                    }
                    // Tables from before records named their predecessor get the column (NULL: unchecked).
                    if !hasColumn {
                        try await connection.query("ALTER TABLE fillguard_journal_records ADD COLUMN IF NOT EXISTS prev_seq BIGINT", logger: logger)
                    }
                    try await connection.query("""
                        CREATE TABLE IF NOT EXISTS fillguard_journal_snapshots (
                            namespace TEXT NOT NULL, symbol TEXT NOT NULL, seq BIGINT NOT NULL,
                            payload BYTEA NOT NULL, crc BIGINT NOT NULL, PRIMARY KEY (namespace, symbol))
                        """, logger: logger)
                    let format = "\(Self.formatVersion)"
                    try await connection.query("""
                        INSERT INTO fillguard_journal_meta (namespace, key, value) VALUES (\(namespace), 'format', \(format))
                        ON CONFLICT (namespace, key) DO NOTHING
                        """, logger: logger)
                    let rows = try await connection.query(
                        "SELECT value FROM fillguard_journal_meta WHERE namespace = \(namespace) AND key = 'format'", logger: logger)
                    var value: String?
                    for try await (text) in rows.decode(String.self) { value = text }
                    return value
                }
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
        guard let stored, let version = Int(stored) else {
            throw JournalError(.corrupted, "the PostgreSQL journal at \(configuration.location) has no readable format version")
        }
        guard version <= formatVersion else {
            throw JournalError(.unsupportedVersion, "the PostgreSQL journal at \(configuration.location) has format \(version), newer than this FillGuard reads (\(formatVersion)); upgrade FillGuard")
        }
    }

    /// Per symbol, the newest record's sequence, or the snapshot's when it is later (its records
    /// were deleted): what the next record of the symbol names as its predecessor.
    private static func lastWrittenSequences(_ namespace: String, on connection: PostgresConnection,
                                             logger: Logger) async throws -> [String: Int64] {
        var chain: [String: Int64] = [:]
        let newest = try await connection.query("""
            SELECT DISTINCT ON (symbol) symbol, seq FROM fillguard_journal_records WHERE namespace = \(namespace) ORDER BY symbol, id DESC
            """, logger: logger)
        for try await (symbol, sequence) in newest.decode((String, Int64).self) { chain[symbol] = sequence }
        let snapshots = try await connection.query(
            "SELECT symbol, seq FROM fillguard_journal_snapshots WHERE namespace = \(namespace)", logger: logger)
        for try await (symbol, sequence) in snapshots.decode((String, Int64).self) { chain[symbol] = max(chain[symbol] ?? .min, sequence) }
        return chain
    }

    /// The advisory lock key that serialises table creation ("FGJN").
    private static let schemaLock: Int64 = 0x4647_4A4E

    /// Inserts input and intent records with one statement, keeping their order in the ids.
    private static func insert(_ linked: [(record: JournalRecord, previous: Int64)], namespace: String, on connection: PostgresConnection,
                               logger: Logger) async throws {
        guard !linked.isEmpty else { return }
        let records = linked.map(\.record)
        let previous = linked.map(\.previous)
        var symbols: [String] = []
        var sequences: [Int64] = []
        var kinds: [Int16] = []
        var payloads: [ByteBuffer] = []
        var checksums: [Int64] = []
        symbols.reserveCapacity(records.count)
        sequences.reserveCapacity(records.count)
        kinds.reserveCapacity(records.count)
        payloads.reserveCapacity(records.count)
        checksums.reserveCapacity(records.count)
        for record in records {
            symbols.append(record.symbol.name)
            sequences.append(Int64(bitPattern: record.sequence))
            kinds.append(Int16(record.kind.rawValue))
            payloads.append(ByteBuffer(bytes: record.payload))
            checksums.append(Int64(record.checksum))
        }
        try await connection.query("""
            INSERT INTO fillguard_journal_records (namespace, symbol, seq, kind, payload, crc, prev_seq)
            SELECT \(namespace), r.symbol, r.seq, r.kind, r.payload, r.crc, r.prev
            FROM unnest(\(symbols)::text[], \(sequences)::int8[], \(kinds)::int2[], \(payloads)::bytea[], \(checksums)::int8[], \(previous)::int8[])
                WITH ORDINALITY AS r(symbol, seq, kind, payload, crc, prev, n)
            ORDER BY r.n
            """, logger: logger)
    }

    /// Stores a snapshot in place of the symbol's previous one and deletes the records it covers.
    private static func replaceSnapshot(_ record: JournalRecord, namespace: String, on connection: PostgresConnection, logger: Logger) async throws {
        let symbol = record.symbol.name
        let sequence = Int64(bitPattern: record.sequence)
        let payload = ByteBuffer(bytes: record.payload)
        let checksum = SnapshotCheck.stored(payload: record.payload, sequence: record.sequence)
        try await connection.query("""
            INSERT INTO fillguard_journal_snapshots (namespace, symbol, seq, payload, crc)
            VALUES (\(namespace), \(symbol), \(sequence), \(payload), \(checksum))
            ON CONFLICT (namespace, symbol) DO UPDATE SET seq = EXCLUDED.seq, payload = EXCLUDED.payload, crc = EXCLUDED.crc
            """, logger: logger)
        try await connection.query(
            "DELETE FROM fillguard_journal_records WHERE namespace = \(namespace) AND symbol = \(symbol) AND seq <= \(sequence)",
            logger: logger)
    }

    /// The first of two racing outcomes (the work's or the timer's): claimed once, then resumed.
    private final class FirstOutcome<Value: Sendable>: Sendable {
        private struct State {
            var claimed = false
            var continuation: CheckedContinuation<Value, any Error>?
            /// An outcome that came before the continuation was kept (a cancellation that came
            /// first): handed to it as soon as it is.
            var early: Swift.Result<Value, any Error>?
        }
        private let state = Mutex(State())

        /// Keeps the continuation the winner resumes (resumed at once if the outcome came first).
        func await(_ continuation: CheckedContinuation<Value, any Error>) {
            let early = state.withLock { state in
                if state.early == nil { state.continuation = continuation }
                return state.early
            }
            if let early { continuation.resume(with: early) }
        }

        /// Whether an outcome has been claimed.
        var isClaimed: Bool { state.withLock { $0.claimed } }

        /// True for the first caller only: the one that resumes.
        func claim() -> Bool {
            state.withLock { state in
                defer { state.claimed = true }
                return !state.claimed
            }
        }

        /// Resumes the waiting caller (by the claimant, once), or keeps the outcome for it.
        func resume(with result: Swift.Result<Value, any Error>) {
            let continuation = state.withLock { state in
                defer { state.continuation = nil }
                if state.continuation == nil { state.early = result }
                return state.continuation
            }
            continuation?.resume(with: result)
        }
    }

    /// A readable account of a postgres-nio error (its own description hides every detail).
    static func describe(_ error: any Error) -> String {
        if let error = error as? PostgresTransactionError {
            if let inner = error.beginError { return "BEGIN failed: \(describe(inner))" }
            if let inner = error.closureError {
                let rollback = error.rollbackError.map { "; ROLLBACK also failed: \(describe($0))" } ?? ""
                return describe(inner) + rollback
            }
            if let inner = error.commitError { return "COMMIT failed (the batch may or may not be stored): \(describe(inner))" }
            return "the transaction failed"
        }
        if let error = error as? PSQLError {
            var parts: [String] = []
            if let info = error.serverInfo {
                let message = info[.message] ?? "server error"
                let state = info[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
                parts.append("the server said: \(message)\(state)")
                if let detail = info[.detail] { parts.append(detail) }
            } else {
                parts.append(String(describing: error.code))
            }
            if let underlying = error.underlying { parts.append(String(describing: underlying)) }
            return parts.joined(separator: "; ")
        }
        return String(describing: error)
    }
}
