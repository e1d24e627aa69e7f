namespace Nabla.NN;

/// <summary>
/// Batch normalisation over the channels (dimension 1) of a batch. Training normalises with the batch's statistics
/// and moves running_mean and running_var (buffers) towards them by <see cref="Momentum"/>; evaluation uses the
/// running statistics. weight (ones) and bias (zeros) are learned when <c>affine</c>. num_batches_tracked counts
/// the training batches, as in PyTorch, so PyTorch's BatchNorm state dicts load strictly (its int64 loads as Int32);
/// like PyTorch, a checkpoint without it (written before it existed) loads too, counting from 0.
/// </summary>
public abstract unsafe class BatchNorm : Module
{
    public int NumFeatures { get; }
    public float Eps { get; }
    /// <summary>Weight of a training batch's statistics in the running ones (1: replace them, which re-estimating
    /// the statistics on one batch of new data uses).</summary>
    public float Momentum { get; set; }
    public Tensor? Weight { get; }
    public Tensor? Bias { get; }
    public Tensor RunningMean { get; }
    public Tensor RunningVar { get; }
    /// <summary>Training batches seen (a 0-d Int32 tensor).</summary>
    public Tensor NumBatchesTracked { get; }

    protected BatchNorm(int numFeatures, float eps, float momentum, bool affine)
    {
        if (numFeatures <= 0) throw new ArgumentException($"{GetType().Name}({numFeatures}): the number of features must be positive.");
        NumFeatures = numFeatures;
        Eps = eps;
        Momentum = momentum;
        if (affine)
        {
            Weight = RegisterParameter("weight", Tensor.Ones(numFeatures));
            Bias = RegisterParameter("bias", Tensor.Zeros(numFeatures));
        }
        RunningMean = RegisterBuffer("running_mean", Tensor.Zeros(numFeatures));
        RunningVar = RegisterBuffer("running_var", Tensor.Ones(numFeatures));
        NumBatchesTracked = RegisterBuffer("num_batches_tracked", Tensor.FromArray([0]).Reshape(), optional: true);
    }

    /// <summary>Whether an input of this rank is what the layer normalises, and how to describe that input.</summary>
    private protected abstract (bool Accepted, string Expected) CheckRank(int rank);

    public override Tensor Forward(Tensor input) => Forward(input, residual: null, relu: false);

    /// <summary>relu(bn(input) + residual) (either part optional) in one pass: see <see cref="F.BatchNorm"/>.</summary>
    public Tensor Forward(Tensor input, Tensor? residual, bool relu)
    {
        var (accepted, expected) = CheckRank(input.Rank);
        if (!accepted) throw new ArgumentException($"{GetType().Name}: input must be {expected}, got {input.ShapeString}.");
        var y = F.BatchNorm(input, RunningMean, RunningVar, Weight, Bias, Training, Momentum, Eps, residual, relu);
        if (Training) CountBatch();
        return y;
    }

    /// <summary>num_batches_tracked += 1, on the counter's device (no read back to the host).</summary>
    private void CountBatch()
    {
        Tensor.KernelsFor("BatchNorm num_batches_tracked", NumBatchesTracked).AddInt(NumBatchesTracked.IntData, 1, 1);
        GC.KeepAlive(NumBatchesTracked);
    }

    protected override string Describe() => $"{NumFeatures}, eps={Eps}, momentum={Momentum}, affine={Weight != null}";
}

/// <summary>Batch normalisation of (N, C) features or (N, C, L) sequences, per channel.</summary>
public sealed class BatchNorm1d(int numFeatures, float eps = 1e-5f, float momentum = 0.1f, bool affine = true)
    : BatchNorm(numFeatures, eps, momentum, affine)
{
    private protected override (bool, string) CheckRank(int rank) => (rank is 2 or 3, "(batch, channels) or (batch, channels, length)");
}

/// <summary>Batch normalisation of (N, C, H, W) images, per channel.</summary>
public sealed class BatchNorm2d(int numFeatures, float eps = 1e-5f, float momentum = 0.1f, bool affine = true)
    : BatchNorm(numFeatures, eps, momentum, affine)
{
    private protected override (bool, string) CheckRank(int rank) => (rank == 4, "(batch, channels, height, width)");
}

/// <summary>
/// Group normalisation (Wu and He, 2018): the channels of each sample are split into <see cref="NumGroups"/>
/// groups, and each group is normalised by its own mean and variance, so the result does not depend on the batch
/// (no running statistics; the same in training and evaluation). weight (ones) and bias (zeros) per channel.
/// </summary>
public sealed class GroupNorm : Module
{
    public int NumGroups { get; }
    public int NumChannels { get; }
    public float Eps { get; }
    public Tensor? Weight { get; }
    public Tensor? Bias { get; }

    public GroupNorm(int numGroups, int numChannels, float eps = 1e-5f, bool affine = true)
    {
        if (numGroups <= 0 || numChannels <= 0 || numChannels % numGroups != 0)
            throw new ArgumentException($"GroupNorm({numGroups}, {numChannels}): the channels must split into the groups evenly.");
        NumGroups = numGroups;
        NumChannels = numChannels;
        Eps = eps;
        if (affine)
        {
            Weight = RegisterParameter("weight", Tensor.Ones(numChannels));
            Bias = RegisterParameter("bias", Tensor.Zeros(numChannels));
        }
    }

    public override Tensor Forward(Tensor input)
    {
        if (input.Rank < 2 || input.Size(1) != NumChannels)
            throw new ArgumentException($"GroupNorm: input must be (batch, {NumChannels} channels, ...), got {input.ShapeString}.");
        return F.GroupNorm(input, NumGroups, Weight, Bias, Eps);
    }

    protected override string Describe() => $"{NumGroups}, {NumChannels}, eps={Eps}, affine={Weight != null}";
}
