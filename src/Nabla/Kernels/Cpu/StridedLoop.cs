namespace Nabla.Kernels.Cpu;

/// <summary>
/// Iterates two strided operands over a shape as a sequence of rows: dimensions of size 1 are dropped and
/// neighbouring dimensions that are contiguous in both operands are merged, so most loops end up as one long
/// vectorisable row (or a few), whatever views the operands are.
/// </summary>
internal sealed class StridedLoop
{
    public long Count;
    public int InnerSize = 1, InnerStrideA, InnerStrideB;
    private int[] _outerShape = [], _outerA = [], _outerB = [];

    public static StridedLoop Coalesce(ReadOnlySpan<int> shape, ReadOnlySpan<int> stridesA, ReadOnlySpan<int> stridesB)
    {
        var loop = new StridedLoop { Count = ShapeMath.Count(shape) };
        if (loop.Count == 0) return loop;
        var dims = new List<(int Size, int A, int B)>();
        for (int d = 0; d < shape.Length; d++)
        {
            if (shape[d] == 1) continue;
            if (dims.Count > 0)
            {
                var (size, a, b) = dims[^1];
                // The previous (outer) dimension folds into this one when it steps exactly over it.
                if (a == stridesA[d] * shape[d] && b == stridesB[d] * shape[d])
                {
                    dims[^1] = (size * shape[d], stridesA[d], stridesB[d]);
                    continue;
                }
            }
            dims.Add((shape[d], stridesA[d], stridesB[d]));
        }
        if (dims.Count == 0) return loop;
        var inner = dims[^1];
        loop.InnerSize = inner.Size;
        loop.InnerStrideA = inner.A;
        loop.InnerStrideB = inner.B;
        int outer = dims.Count - 1;
        loop._outerShape = new int[outer];
        loop._outerA = new int[outer];
        loop._outerB = new int[outer];
        for (int d = 0; d < outer; d++) (loop._outerShape[d], loop._outerA[d], loop._outerB[d]) = dims[d];
        return loop;
    }

    /// <summary>An iterator positioned at row <paramref name="row"/> (rows are counted over the outer dimensions).</summary>
    public Iter Iterator(long row) => new(this, row);

    public struct Iter
    {
        private readonly StridedLoop _loop;
        private readonly int[] _index;
        public long OffsetA, OffsetB;

        public Iter(StridedLoop loop, long row)
        {
            _loop = loop;
            _index = new int[loop._outerShape.Length];
            for (int d = _index.Length - 1; d >= 0; d--)
            {
                int size = loop._outerShape[d];
                _index[d] = (int)(row % size);
                row /= size;
                OffsetA += (long)_index[d] * loop._outerA[d];
                OffsetB += (long)_index[d] * loop._outerB[d];
            }
        }

        public void Next()
        {
            for (int d = _index.Length - 1; d >= 0; d--)
            {
                OffsetA += _loop._outerA[d];
                OffsetB += _loop._outerB[d];
                if (++_index[d] < _loop._outerShape[d]) return;
                OffsetA -= (long)_loop._outerA[d] * _index[d];
                OffsetB -= (long)_loop._outerB[d] * _index[d];
                _index[d] = 0;
            }
        }
    }
}
