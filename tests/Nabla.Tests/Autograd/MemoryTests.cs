using Nabla.Autograd;
using Nabla.Data;
using Nabla.Models.Gpt2;
using Nabla.NN;
using Nabla.Optim;
using Nabla.Training;

namespace Nabla.Tests.Autograd;

/// <summary>
/// Memory that does not wait for the garbage collector: what a step creates inside a <see cref="MemoryScope"/> goes
/// back to the pool when it ends, the engine releases what only backward could see as soon as it is done with it,
/// and reading released memory is an error that says why.
/// </summary>
public class MemoryScopeTests
{
    [Fact]
    public void ATensorOfAnEndedScopeIsAnErrorToReadNotStaleData()
    {
        Tensor inside;
        using (MemoryScope.Begin()) inside = Tensor.Ones(4, 4).Mul(2f);
        var error = Assert.Throws<ObjectDisposedException>(() => inside.ToArray());
        Assert.Contains("MemoryScope", error.Message);
        Assert.Contains("Keep", error.Message);
        Assert.Throws<ObjectDisposedException>(() => inside.T.ToArray());
    }

    [Fact]
    public void KeptTensorsAndEverythingMadeBeforeTheScopeSurviveIt()
    {
        var before = Tensor.Full(3f, 2, 2);
        Tensor kept, viewOfKept, sibling;
        using (MemoryScope.Begin())
        {
            var made = Tensor.Arange(6).Reshape(2, 3);
            sibling = made.Select(0, 1);
            kept = MemoryScope.Keep(made.Select(0, 0)); // keeping a view keeps its whole storage
            viewOfKept = before.Add(1f);
            viewOfKept = viewOfKept.Narrow(0, 0, 1);
        }
        Assert.Equal(new float[] { 3, 3, 3, 3 }, before.ToArray());
        Assert.Equal(new float[] { 0, 1, 2 }, kept.ToArray());
        Assert.Equal(new float[] { 3, 4, 5 }, sibling.ToArray());
        Assert.Throws<ObjectDisposedException>(() => viewOfKept.ToArray());
    }

    [Fact]
    public void ParametersOptimizerStateAndModuleBuffersMadeInsideAScopeOutliveIt()
    {
        Linear layer;
        BatchNorm2d norm;
        AdamW optimizer;
        using (MemoryScope.Begin())
        {
            layer = new Linear(3, 2, generator: new Generator(1));
            norm = new BatchNorm2d(2);
            optimizer = new AdamW(layer.Parameters(), 0.1f);
            F.MseLoss(layer.Forward(Tensor.Ones(4, 3)), Tensor.Zeros(4, 2)).Backward();
            optimizer.Step();
        }
        Assert.Equal(6, layer.Weight.ToArray().Length);
        Assert.NotNull(layer.Weight.Grad);
        Assert.Equal(2, norm.RunningMean.ToArray().Length);
        Assert.All(optimizer.StateDict().Values, t => t.ToArray());
    }

    [Fact]
    public void ABatchPrefetchedOnAnotherThreadBelongsToTheScopeThatTookIt()
    {
        var images = Tensor.Rand(new Generator(8), 6, 1, 4, 4);
        var labels = Tensor.FromArray([0, 1, 2, 0, 1, 2]);
        using var loader = new Nabla.Data.ImageLoader(images, labels, batchSize: 2, prefetch: 2);
        Tensor batch;
        using (MemoryScope.Begin()) (batch, _) = loader.Batch(0);
        Assert.Throws<ObjectDisposedException>(() => batch.ToArray());
        Assert.Equal(32, loader.Batch(1).Inputs.ToArray().Length); // the loader itself is unharmed
    }

    [Fact]
    public void ScopesEndInnermostFirst()
    {
        var outer = MemoryScope.Begin();
        var inner = MemoryScope.Begin();
        var error = Assert.Throws<InvalidOperationException>(outer.Dispose);
        Assert.Contains("innermost first", error.Message);
        inner.Dispose();
        outer.Dispose();
    }

    [Fact]
    public void OutputsStayReadableAfterBackwardUntilTheScopeEnds()
    {
        var w = Tensor.FromArray([1f, -2f, 0.5f]).RequiresGrad_();
        Tensor logits, loss;
        using (MemoryScope.Begin())
        {
            logits = w.Mul(Tensor.FromArray([2f, 3f, 4f]));
            loss = logits.Square().Sum();
            loss.Backward();
            Assert.Equal(new float[] { 2, -6, 2 }, logits.ToArray()); // e.g. accuracy computed after backward
            Assert.Equal(44f, loss.Item());
        }
        Assert.Equal(new float[] { 8, -36, 16 }, w.Grad!.ToArray()); // d/dw Σ(w·c)² = 2·w·c²
        Assert.Throws<ObjectDisposedException>(() => logits.ToArray());
    }

    [Fact]
    public void TheEngineReleasesWhatAnOpSavedForItsBackwardOnceItRan()
    {
        var x = Tensor.Randn(new Generator(3), 4, 6).RequiresGrad_();
        var y = F.LayerNorm(x, [6]);
        var saved = y.GradFn!.Saved.Where(s => s != null).Select(s => s!).ToArray();
        Assert.Equal(2, saved.Length); // mean and rstd (x is contiguous: no private copy)
        y.Sum().Backward();
        Assert.All(saved, s => Assert.True(s.Storage.IsReleased));
        Assert.False(y.Storage.IsReleased); // the output is the caller's
        var error = Assert.Throws<ObjectDisposedException>(() => saved[0].ToArray());
        Assert.Contains("backward", error.Message);
    }

    [Fact]
    public void ARetainedGraphKeepsWhatItsOpsSaved()
    {
        var x = Tensor.Randn(new Generator(4), 3, 5).RequiresGrad_();
        var y = F.LayerNorm(x, [5]).Sum();
        y.Backward(retainGraph: true);
        var first = x.Grad!.ToArray();
        x.Grad = null;
        y.Backward();
        Assert.Equal(first, x.Grad!.ToArray());
    }

    [Fact]
    public void ZeroGradReleasesGradientsTheEngineMadeButNotOnesTheUserSet()
    {
        var p = Tensor.FromArray([1f, 2f]).RequiresGrad_();
        var optimizer = new SGD([p], 0.1f);
        p.Square().Sum().Backward();
        var engineGrad = p.Grad!;
        optimizer.ZeroGrad();
        Assert.Null(p.Grad);
        var error = Assert.Throws<ObjectDisposedException>(() => engineGrad.ToArray());
        Assert.Contains("ZeroGrad", error.Message);

        var mine = Tensor.FromArray([5f, 6f]);
        p.Grad = mine;
        optimizer.ZeroGrad();
        Assert.Equal(new float[] { 5, 6 }, mine.ToArray());
    }
}

/// <summary>
/// A training step's peak tensor memory is the same every step, whether or not the garbage collector ran before it,
/// and no memory is left behind. Measured on the process-wide pool, so this runs alone (after the parallel tests).
/// </summary>
[Collection(Nabla.Tests.Kernels.KernelSettingsCollection.Name)]
public class TrainingStepMemoryTests
{
    [Fact]
    public void PeakMemoryOfAStepIsBoundedAndTheSameWithAndWithoutGarbageCollection()
    {
        var config = new Gpt2Config { VocabSize = 67, MaxSequenceLength = 16, Channels = 32, Layers = 2, Heads = 4 };
        var model = new Gpt2Model(config, new Generator(7));
        var optimizer = new AdamW(model.Parameters(), 1e-3f);
        var tokens = Enumerable.Range(0, 4 * 17 * 4).Select(i => i * 31 % config.VocabSize).ToArray();
        var data = new TokenBatchLoader(tokens, 4, 16);
        long step = 0;
        // (bytes live when the step starts, above which its peak rises; bytes live when it has ended)
        (long Start, long Rise, long End) Step(bool collectFirst)
        {
            if (collectFirst)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                GC.Collect();
            }
            long start = BufferPool.LiveBytes;
            BufferPool.ResetPeak();
            using (MemoryScope.Begin())
            {
                var (x, y) = data.Batch(step++ % 4);
                var loss = Gpt2Model.Loss(model.Forward(x), y);
                optimizer.ZeroGrad();
                loss.Backward();
                optimizer.Step();
                Assert.True(float.IsFinite(loss.Item()));
            }
            return (start, BufferPool.PeakLiveBytes - start, BufferPool.LiveBytes);
        }

        for (int i = 0; i < 3; i++) Step(collectFirst: false); // warm: optimizer state, gradients, pool
        GC.Collect();
        GC.WaitForPendingFinalizers(); // what earlier tests left to the finalizers is gone before measuring
        var without = Enumerable.Range(0, 4).Select(_ => Step(collectFirst: false)).ToArray();
        var with = Enumerable.Range(0, 4).Select(_ => Step(collectFirst: true)).ToArray();

        var all = without.Concat(with).ToArray();
        // Nothing is left behind: each step ends where it started (parameters, their gradients, optimizer state).
        Assert.All(all, s => Assert.Equal(s.Start, s.End));
        Assert.All(all, s => Assert.Equal(all[0].Start, s.Start));
        // The same peak every step, collector or not.
        Assert.All(all, s => Assert.Equal(all[0].Rise, s.Rise));
        // Bounded: the step's activations and gradients, a small multiple of the model's own memory here.
        long modelBytes = model.ParameterCount * 4;
        Assert.InRange(all[0].Rise, modelBytes / 2, 8 * modelBytes);
    }

    [Fact]
    public void GradientAccumulationHoldsOneMicroBatchOfActivationsAtATime()
    {
        var config = new Gpt2Config { VocabSize = 67, MaxSequenceLength = 16, Channels = 32, Layers = 2, Heads = 4 };
        var tokens = Enumerable.Range(0, 4 * 17 * 8).Select(i => i * 31 % config.VocabSize).ToArray();
        // Peak tensor memory of training two steps from scratch, above what was live before.
        long PeakOfTraining(int accumulation)
        {
            var model = new Gpt2Model(config, new Generator(7));
            var optimizer = new AdamW(model.Parameters(), 1e-3f);
            var trainer = new Trainer(model, (logits, targets) => Gpt2Model.Loss(logits, targets), new TokenBatchLoader(tokens, 4, 16), optimizer,
                new TrainerOptions { Steps = 2, GradientAccumulation = accumulation });
            GC.Collect();
            GC.WaitForPendingFinalizers();
            long before = BufferPool.LiveBytes;
            BufferPool.ResetPeak();
            trainer.Train();
            return BufferPool.PeakLiveBytes - before;
        }

        long single = PeakOfTraining(1), accumulated = PeakOfTraining(4);
        // Each micro-batch's activations go back to the pool before the next one runs, so four micro-batches peak about
        // as high as one (a little higher: a gradient being added into the one the first micro-batch made). Holding
        // all four batches' activations would more than double the peak.
        Assert.InRange(accumulated, single / 2, single + single / 4);
    }
}
