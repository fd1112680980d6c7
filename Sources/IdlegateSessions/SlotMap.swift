/// One stripe's map: open addressing with linear probing, key and record side by side in one slot
/// (48 bytes), so a lookup costs one cache miss instead of Dictionary's three (metadata, keys, values).
///
/// No hashing step: a key is already an HMAC output under a secret an attacker does not know, so its
/// bits are uniformly spread and cannot be chosen to collide (no hash flooding).
struct SlotMap {
    struct Slot {
        var key: SessionKey
        var record: SessionRecord
        /// An all-zero key marks an empty slot (an HMAC output is zero with probability 2^-128; such a
        /// session would simply never be tracked). Keeps a slot at 48 bytes.
        @inline(__always) var used: Bool { key.hi != 0 || key.lo != 0 }
    }

    private(set) var slots: [Slot]
    private(set) var count = 0
    private var mask: Int

    static let empty = Slot(key: SessionKey(hi: 0, lo: 0), record: SessionRecord(started: 0, lastActive: 0, limits: SessionLimits(idle: 0)))

    init(capacity: Int = 16) {
        var n = 16
        while n < capacity { n <<= 1 }
        slots = Array(repeating: Self.empty, count: n)
        mask = n - 1
    }

    /// The home slot of a key: its high bits (the stripe was picked with the low ones).
    @inline(__always) private func home(_ key: SessionKey) -> Int { Int(truncatingIfNeeded: key.hi) & mask }

    /// The slot holding `key`, if any.
    func find(_ key: SessionKey) -> Int? {
        var i = home(key)
        while slots[i].used {
            if slots[i].key == key { return i }
            i = (i + 1) & mask
        }
        return nil
    }

    subscript(key: SessionKey) -> SessionRecord? {
        guard let i = find(key) else { return nil }
        return slots[i].record
    }

    /// Gives the record at slot `i` to `body` to change in place.
    @inline(__always) mutating func update<R>(at i: Int, _ body: (inout SessionRecord) -> R) -> R {
        body(&slots[i].record)
    }

    mutating func insert(_ key: SessionKey, _ record: SessionRecord) {
        guard key.hi != 0 || key.lo != 0 else { return }
        if let i = find(key) {
            slots[i].record = record
            return
        }
        if (count + 1) * 4 > slots.count * 3 { grow() }
        var i = home(key)
        while slots[i].used { i = (i + 1) & mask }
        slots[i] = Slot(key: key, record: record)
        count += 1
    }

    /// Removes `key`, shifting later entries of its run back (no tombstones).
    mutating func remove(_ key: SessionKey) {
        guard var hole = find(key) else { return }
        slots[hole] = Self.empty
        count -= 1
        var i = (hole + 1) & mask
        while slots[i].used {
            let h = home(slots[i].key)
            // Move slot i into the hole if its home does not lie cyclically in (hole, i].
            let inRange = hole <= i ? (h > hole && h <= i) : (h > hole || h <= i)
            if !inRange {
                slots[hole] = slots[i]
                slots[i] = Self.empty
                hole = i
            }
            i = (i + 1) & mask
        }
    }

    /// Keeps the entries `keep` accepts; returns how many went.
    mutating func filter(_ keep: (SessionRecord) -> Bool) -> Int {
        // Most sweeps find nothing to drop in most stripes: then nothing is rebuilt.
        guard slots.contains(where: { $0.used && !keep($0.record) }) else { return 0 }
        let before = count
        let live = slots.filter { $0.used && keep($0.record) }
        var n = 16
        while n * 3 < live.count * 4 + 4 { n <<= 1 }
        self = SlotMap(capacity: max(16, n))
        for s in live { insert(s.key, s.record) }
        return before - count
    }

    /// Every used slot's key and record.
    var entries: [(SessionKey, SessionRecord)] {
        slots.filter(\.used).map { ($0.key, $0.record) }
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: Self.empty, count: old.count * 2)
        mask = slots.count - 1
        count = 0
        for s in old where s.used {
            var i = home(s.key)
            while slots[i].used { i = (i + 1) & mask }
            slots[i] = s
            count += 1
        }
    }
}
