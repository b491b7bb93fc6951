namespace ClusterConv.Engine;

/// <summary>
/// A small, fast, reproducible generator (SplitMix64). System.Random's algorithm is not guaranteed
/// across .NET versions; training reproducibility must not depend on the runtime.
/// </summary>
public struct DeterministicRandom
{
    private ulong state;

    public DeterministicRandom(ulong seed) => state = seed;

    public static ulong Mix(ulong a, ulong b, ulong c = 0, ulong d = 0)
    {
        var s = new DeterministicRandom(a ^ 0x9E3779B97F4A7C15UL);
        var h = s.NextUInt64();
        s = new DeterministicRandom(h ^ b);
        h = s.NextUInt64();
        s = new DeterministicRandom(h ^ c);
        h = s.NextUInt64();
        s = new DeterministicRandom(h ^ d);
        return s.NextUInt64();
    }

    public ulong NextUInt64()
    {
        var z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 24 bits, exactly representable as float.</summary>
    public float NextFloat() => (NextUInt64() >> 40) * (1.0f / (1 << 24));

    /// <summary>Uniform in [0, 1) with 53 bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, maxExclusive).</summary>
    public int NextInt(int maxExclusive)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxExclusive);
        return (int)((NextUInt64() >> 33) % (ulong)maxExclusive);
    }

    /// <summary>Standard normal (Box-Muller), deterministic.</summary>
    public double NextGaussian()
    {
        var u1 = 1.0 - NextDouble();
        var u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }
}
