using Nabla.Optim;

namespace Nabla.Distributed;

/// <summary>
/// ZeRO stage 1 (as llm.c does it): each rank keeps optimizer state for, and updates, only its own share of the
/// parameters. The shares are runs of whole parameters in order, balanced by size (PyTorch's ZeroRedundancyOptimizer
/// also shards by parameter). A step is: <see cref="ReduceScatterGradients"/> (each rank receives the average over
/// the ranks of its share's gradients; the others' gradients are dropped, so the optimizer, which skips parameters
/// without a gradient, creates and updates state for the share alone), the clipping norm from every share
/// (<see cref="GlobalNorm"/>), the optimizer step, and <see cref="AllGatherParameters"/>. The flat buffers are padded
/// to the largest share, since a reduce-scatter gives every rank a block of one size.
/// <para>Checkpoints hold the whole state (<see cref="ConsolidatedStateDict"/>), in the layout of an unsharded
/// optimizer, so a run resumes on any number of ranks, sharded or not (<see cref="OwnShare"/> keeps a rank's part).</para>
/// </summary>
public sealed class ShardedOptimizerState
{
    private readonly ICommunicator _communicator;
    private readonly Optimizer _optimizer;
    private readonly Tensor[] _parameters;
    private readonly int[] _owner;     // rank owning each parameter
    private readonly int[] _offset;    // its offset inside its owner's block
    private readonly int _block;       // elements per rank's block (the largest share)
    private readonly float[] _all;     // Size × _block: gradients to reduce-scatter, then parameters gathered
    private readonly float[] _mine;    // _block: this rank's share

    public ShardedOptimizerState(ICommunicator communicator, Optimizer optimizer)
    {
        _communicator = communicator;
        _optimizer = optimizer;
        _parameters = optimizer.Groups.SelectMany(g => g.Parameters).ToArray();
        _owner = new int[_parameters.Length];
        _offset = new int[_parameters.Length];
        long total = _parameters.Sum(p => (long)p.Count), done = 0;
        var filled = new long[communicator.Size];
        for (int i = 0; i < _parameters.Length; i++)
        {
            // The rank whose equal part of the flat parameter vector holds this parameter's middle element.
            int rank = (int)Math.Min(communicator.Size - 1, (done + _parameters[i].Count / 2) * communicator.Size / Math.Max(1, total));
            _owner[i] = rank;
            _offset[i] = checked((int)filled[rank]);
            filled[rank] += _parameters[i].Count;
            done += _parameters[i].Count;
        }
        _block = checked((int)Math.Max(1, filled.Max()));
        _all = new float[checked(_block * communicator.Size)];
        _mine = new float[_block];
    }

    /// <summary>Elements of the optimizer state this rank keeps (of the parameters it owns).</summary>
    public long OwnedElements => Enumerable.Range(0, _parameters.Length).Where(Owned).Sum(i => (long)_parameters[i].Count);

    private bool Owned(int i) => _owner[i] == _communicator.Rank;

    /// <summary>Averages the gradients over the ranks into this rank's share and drops the gradients of the rest.
    /// A parameter without a gradient (unused this step, on every rank) keeps none.</summary>
    public void ReduceScatterGradients()
    {
        Array.Clear(_all);
        for (int i = 0; i < _parameters.Length; i++)
            if (_parameters[i].Grad is { } g)
                Contiguous(g).AsSpan().CopyTo(_all.AsSpan(_owner[i] * _block + _offset[i], _parameters[i].Count));
        _communicator.ReduceScatter(_all, _mine);
        for (int i = 0; i < _parameters.Length; i++)
        {
            var p = _parameters[i];
            if (!Owned(i) || p.Grad == null) { p.DropGrad(); continue; }
            var target = Contiguous(p.Grad);
            var span = target.AsSpan();
            _mine.AsSpan(_offset[i], p.Count).CopyTo(span);
            System.Numerics.Tensors.TensorPrimitives.Divide(span, _communicator.Size, span);
            if (!ReferenceEquals(target, p.Grad)) p.Grad = target;
        }
    }

    /// <summary>The L2 norm of all the ranks' gradients together (the same on every rank): each rank's sum of squares
    /// in double, gathered as two floats (high part and remainder) and summed in rank order.</summary>
    public double GlobalNorm()
    {
        double mine = Math.Pow(GradientClipping.TotalNorm(_parameters), 2);
        float high = (float)mine;
        Span<float> parts = [high, (float)(mine - high)];
        var all = new float[2 * _communicator.Size];
        _communicator.AllGather(parts, all);
        double sum = 0;
        for (int r = 0; r < _communicator.Size; r++) sum += (double)all[2 * r] + all[2 * r + 1];
        return Math.Sqrt(sum);
    }

    /// <summary>Gives every rank the parameters every other rank has just updated.</summary>
    public void AllGatherParameters()
    {
        for (int i = 0; i < _parameters.Length; i++)
            if (Owned(i)) _parameters[i].AsSpan().CopyTo(_mine.AsSpan(_offset[i]));
        _communicator.AllGather(_mine, _all);
        for (int i = 0; i < _parameters.Length; i++)
            if (!Owned(i)) _all.AsSpan(_owner[i] * _block + _offset[i], _parameters[i].Count).CopyTo(_parameters[i].AsSpan());
    }

    /// <summary>The whole optimizer state, as <see cref="Optimizer.StateDict"/> of one unsharded optimizer would hold
    /// it, assembled on every rank (a collective: every rank must call it).</summary>
    public Dictionary<string, Tensor> ConsolidatedStateDict()
    {
        var local = _optimizer.StateDict();
        var names = _optimizer.BufferNames;
        // Which parameters have state: only their owner knows.
        var hasState = new float[_parameters.Length];
        for (int i = 0; i < _parameters.Length; i++)
            if (Owned(i) && names.Count > 0 && local.ContainsKey($"{i}.{names[0]}")) hasState[i] = 1;
        _communicator.AllReduce(hasState, ReduceOp.Sum);
        var state = new Dictionary<string, Tensor> { ["step"] = local["step"] };
        for (int i = 0; i < _parameters.Length; i++)
        {
            if (hasState[i] == 0) continue;
            foreach (var name in names)
            {
                var key = $"{i}.{name}";
                var buffer = Owned(i) ? local[key] : Tensor.Zeros(_parameters[i].Count);
                _communicator.Broadcast(buffer.AsSpan(), root: _owner[i]);
                state[key] = buffer;
            }
        }
        return state;
    }

    /// <summary>The entries of a whole state dict that belong to this rank's share (and the step counter).</summary>
    public Dictionary<string, Tensor> OwnShare(IReadOnlyDictionary<string, Tensor> state) =>
        state.Where(kv => kv.Key == "step" || !int.TryParse(kv.Key.Split('.')[0], out int i) || i < 0 || i >= _parameters.Length || Owned(i))
            .ToDictionary(kv => kv.Key, kv => kv.Value);

    private static Tensor Contiguous(Tensor gradient) => gradient.IsContiguous ? gradient : gradient.Contiguous();
}
