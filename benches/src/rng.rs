//! A small deterministic PRNG for synthetic data: the same seed gives the
//! same traces on every machine.

/// A small deterministic PRNG (xorshift64*), enough for synthetic data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (a zero seed is replaced).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A log-normal-ish duration around `median_us`, in nanoseconds.
    pub fn duration_ns(&mut self, median_us: u64) -> u64 {
        // Sum of uniforms approximates a normal; exponentiate for a long tail.
        let z = (self.unit() + self.unit() + self.unit() - 1.5) * 2.0;
        ((median_us as f64) * (0.5 * z).exp() * 1000.0) as u64
    }
}
