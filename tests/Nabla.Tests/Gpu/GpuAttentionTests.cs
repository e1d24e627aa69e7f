using Nabla.Gpu;
using Nabla.Kernels;
using Nabla.Kernels.Reference;
using static Nabla.Tests.Gpu.GpuCheck;

namespace Nabla.Tests.Gpu;

/// <summary>
/// Both attention versions (materialising, flash), forward and backward, against the reference: one position;
/// one short of, at and past the flash kernels' 64-query groups and 32-key tiles; odd head dimensions; fewer
/// queries than keys (decoding against a cache); more queries than keys under a causal mask (rows that see
/// nothing); heads wider than the flash kernels hold (they fall back to v1); and interleaved (B, T, H, D) layouts.
/// </summary>
public sealed unsafe class GpuAttentionTests
{
    public static TheoryData<AttentionVersion, int, int, int, int, int, bool> Cases()
    {
        var data = new TheoryData<AttentionVersion, int, int, int, int, int, bool>();
        (int B, int H, int Tq, int Tk, int D, bool Causal)[] shapes =
        [
            (2, 3, 1, 1, 8, true),
            (1, 1, 63, 63, 16, true), (1, 1, 65, 65, 16, true), (1, 1, 65, 65, 7, false),
            (1, 2, 33, 33, 65, true),
            (1, 2, 1, 70, 16, true), (1, 1, 5, 70, 32, true),
            (1, 1, 5, 3, 8, true),
            (1, 1, 9, 9, 130, true),
        ];
        foreach (var version in Enum.GetValues<AttentionVersion>())
            foreach (var s in shapes)
                data.Add(version, s.B, s.H, s.Tq, s.Tk, s.D, s.Causal);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void ForwardAndBackwardMatchReference(AttentionVersion version, int batch, int heads, int tq, int tk, int dim, bool causal)
    {
        foreach (bool interleaved in new[] { false, true })
        {
            var g = new Generator((ulong)(tq * 1000 + tk + dim));
            RowStrides Rows(int t) => interleaved ? new((long)t * heads * dim, dim, (long)heads * dim) : new((long)heads * t * dim, (long)t * dim, dim);
            var layout = new AttentionLayout(batch, heads, tq, tk, dim, 1f / MathF.Sqrt(dim), causal, Rows(tq), Rows(tk), Rows(tk), Rows(tq));
            long qn = (long)batch * heads * tq * dim, kn = (long)batch * heads * tk * dim, ln = (long)batch * heads * tq;
            var q = Normal(g, qn);
            var k = Normal(g, kn);
            var v = Normal(g, kn);
            var dout = Normal(g, qn);
            var (o, lse, dq, dk, dv) = (new float[qn], new float[ln], new float[qn], new float[kn], new float[kn]);
            fixed (float* pq = q, pk = k, pv = v, pdo = dout, po = o, pl = lse, pdq = dq, pdk = dk, pdv = dv)
            {
                ReferenceBackend.Instance.Attention(layout, pq, pk, pv, po, pl);
                ReferenceBackend.Instance.AttentionBackward(layout, pq, pk, pv, po, pl, pdo, pdq, pdk, pdv);
            }
            using var d = new DeviceArrays();
            float* gq = d.Upload(q), gk = d.Upload(k), gv = d.Upload(v), go = d.Filled(qn), gl = d.Filled(ln);
            float* gdq = d.Filled(qn), gdk = d.Filled(kn), gdv = d.Filled(kn);
            var gpu = GpuTestDevice.Kernels;
            gpu.Attention(version, layout, gq, gk, gv, go, gl);
            string what = $"{version} B={batch} H={heads} Tq={tq} Tk={tk} D={dim} causal={causal} interleaved={interleaved}";
            Near(o, d.Read(go, qn), what + " o", 1e-4, 1e-5);
            Near(lse, d.Read(gl, ln), what + " lse", 1e-5, 1e-5);
            gpu.AttentionBackward(version, layout, gq, gk, gv, go, gl, d.Upload(dout), gdq, gdk, gdv);
            Near(dq, d.Read(gdq, qn), what + " dq", 1e-3, 1e-4);
            Near(dk, d.Read(gdk, kn), what + " dk", 1e-3, 1e-4);
            Near(dv, d.Read(gdv, kn), what + " dv", 1e-3, 1e-4);
        }
    }
}
