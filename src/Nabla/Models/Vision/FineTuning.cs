using Nabla.Autograd;
using Nabla.Data;
using Nabla.NN;
using Nabla.Optim;

namespace Nabla.Models.Vision;

/// <summary>
/// Transfer learning: a pretrained <see cref="ResNet"/> reused as a frozen feature extractor for a new, small
/// dataset, with new layers at both ends — the only ones trained (Yosinski et al., 2014, "How transferable are
/// features in deep neural networks?": the early and middle layers of a network trained on one image task are
/// general, so a new task needs little more than a new classifier on top):
/// <list type="bullet">
/// <item><c>adapter</c>: brings the new images to what the body was trained on — a bilinear resize to its input
/// size, then a 1×1 convolution from the new images' channels to the body's (grey → RGB for an ImageNet body),
/// initialised to the normalisation the body expects, so the pretrained features are meaningful from the first
/// step; training then adjusts it;</item>
/// <item><c>body</c>: the pretrained network with its classifier replaced by the identity (its pooled features
/// come out), frozen: no gradients for its parameters, and its batch norm stays in evaluation mode so its running
/// statistics, learned on the original data, are neither used as batch statistics nor updated;</item>
/// <item><c>head</c>: a new linear classifier for the new classes.</item>
/// </list>
/// <see cref="UnfreezeLastStage"/> also trains the body's last stage, the most task-specific one.
/// </summary>
public sealed class FineTunedClassifier : Module
{
    public int ImageSize { get; }

    /// <param name="body">The pretrained network; its fc is replaced by <see cref="Identity"/> and all its
    /// parameters frozen.</param>
    /// <param name="inChannels">Channels of the new images.</param>
    /// <param name="imageSize">Side the new images are resized to: the body's training size.</param>
    /// <param name="bodyNormalization">The per-channel statistics the body's training images were normalised
    /// with (the adapter starts as that normalisation; new images come in [0, 1]).</param>
    public FineTunedClassifier(ResNet body, int inChannels, int imageSize, int numClasses, Normalization bodyNormalization, Generator? generator = null)
    {
        if (inChannels <= 0 || imageSize <= 0 || numClasses <= 0)
            throw new ArgumentException($"FineTunedClassifier: channels ({inChannels}), image size ({imageSize}) and classes ({numClasses}) must be positive.");
        if (bodyNormalization.Channels != body.InChannels)
            throw new ArgumentException($"FineTunedClassifier: the body takes {body.InChannels} channel(s) but its normalisation describes {bodyNormalization.Channels}.");
        ImageSize = imageSize;
        var projection = new Conv2d(inChannels, body.InChannels, 1, generator: generator);
        InitializeAsNormalization(projection, bodyNormalization);
        RegisterModule("adapter", new Sequential(new Resize(imageSize, imageSize), projection));
        body.SetSubmodule("fc", new Identity());
        body.RequiresGrad_(false);
        RegisterModule("body", body);
        RegisterModule("head", new Linear(body.FeatureCount, numClasses, generator: generator));
    }

    /// <summary>y_c = (mean of the input channels − mean_c) / std_c for each of the body's channels c: grey in [0, 1]
    /// becomes the normalised image the body was trained on (replicated to every channel for an RGB body).</summary>
    private static void InitializeAsNormalization(Conv2d projection, Normalization normalization)
    {
        int inputs = projection.InChannels, outputs = projection.OutChannels;
        var weight = new float[outputs * inputs];
        var bias = new float[outputs];
        for (int c = 0; c < outputs; c++)
        {
            for (int i = 0; i < inputs; i++) weight[c * inputs + i] = 1f / (inputs * normalization.Std[c]);
            bias[c] = -normalization.Mean[c] / normalization.Std[c];
        }
        using var _ = Autograd.GradMode.NoGrad();
        projection.Weight.CopyFrom(Tensor.FromArray(weight, outputs, inputs, 1, 1));
        projection.Bias!.CopyFrom(Tensor.FromArray(bias));
    }

    public ResNet Body => (ResNet)GetSubmodule("body");

    /// <summary>Trains the body's last stage too (layer4 of a ResNet-18, layer3 of a ResNet-20), batch norm included.</summary>
    public void UnfreezeLastStage()
    {
        Body.GetSubmodule(Body.StageNames[^1]).RequiresGrad_(true);
        Train(Training);
    }

    /// <summary>The parameters to optimise in two groups, as PyTorch users write param_groups for discriminative
    /// learning rates (Howard &amp; Ruder, 2018): the new layers (adapter and head) at the optimizer's rate, and the
    /// body's trainable (pretrained) layers at <paramref name="bodyLearningRate"/> (null: the optimizer's rate too),
    /// usually lower so that the large gradients of the new, random head do not wipe out what the body learned.
    /// Frozen parameters are left out; a group with none is left out too.</summary>
    public IReadOnlyList<ParamGroup> ParameterGroups(float? bodyLearningRate)
    {
        var newLayers = GetSubmodule("adapter").Parameters().Concat(GetSubmodule("head").Parameters()).Where(p => p.RequiresGrad).ToList();
        var body = Body.Parameters().Where(p => p.RequiresGrad).ToList();
        return new[] { new ParamGroup(newLayers), new ParamGroup(body, bodyLearningRate) }.Where(g => g.Parameters.Count > 0).ToList();
    }

    /// <summary>Re-estimates every batch-norm statistic of the body on <paramref name="images"/>, the new training
    /// data (AdaBN, Li et al., 2016): the statistics learned on the body's own images describe activations the new
    /// images do not produce. One forward pass over all the images as one batch, each batch norm replacing its
    /// running statistics by the batch's (momentum 1), so every layer is measured on the activations it will see
    /// in evaluation mode once its predecessors use their new statistics. Parameters do not change.</summary>
    public void RecomputeBatchNormStatistics(Tensor images)
    {
        bool training = Training;
        var norms = Body.Modules().OfType<BatchNorm>().ToList();
        var momenta = norms.Select(n => n.Momentum).ToList();
        try
        {
            foreach (var norm in norms) { norm.Momentum = 1f; norm.Train(); }
            using var _ = GradMode.NoGrad();
            ForwardChild("body", ForwardChild("adapter", images));
        }
        finally
        {
            for (int i = 0; i < norms.Count; i++) norms[i].Momentum = momenta[i];
            Train(training);
        }
    }

    /// <summary>Linear probing, the first half of LP-FT (Kumar et al., 2022, "Fine-Tuning can Distort Pretrained
    /// Features and Underperform Out-of-Distribution"): fits the head alone on the body's features of
    /// <paramref name="images"/>, computed once in evaluation mode, with <paramref name="steps"/> full-batch AdamW
    /// steps. Fine-tuning then starts from a head that already fits the features, instead of a random one whose
    /// large early gradients distort them. Only the head changes.</summary>
    public void FitHead(Tensor images, Tensor labels, int steps, float learningRate, float weightDecay)
    {
        bool training = Training;
        Tensor features;
        Eval();
        using (GradMode.NoGrad()) features = ForwardChild("body", ForwardChild("adapter", images));
        Train(training);
        var head = GetSubmodule("head");
        var optimizer = new AdamW(head.Parameters(), learningRate, weightDecay: weightDecay);
        for (int step = 0; step < steps; step++)
        {
            using var scope = MemoryScope.Begin();
            var loss = F.CrossEntropy(head.Forward(features), labels);
            optimizer.ZeroGrad();
            loss.Backward();
            optimizer.Step();
        }
    }

    /// <summary>Sets the mode as usual, then puts back in evaluation mode every layer whose parameters are all
    /// frozen: a frozen batch norm keeps normalising with the running statistics it was trained with.</summary>
    public override Module Train(bool on = true)
    {
        base.Train(on);
        if (on)
            foreach (var module in Modules())
                if (!module.Children().Any() && module.Parameters().Any() && module.Parameters().All(p => !p.RequiresGrad))
                    module.Eval();
        return this;
    }

    /// <summary>Logits (B, classes) for images (B, C, H, W) of any size (they are resized).</summary>
    public override Tensor Forward(Tensor images)
    {
        var x = ForwardChild("adapter", images);  // (B, C_body, S, S), normalised as the body expects
        var features = ForwardChild("body", x);    // (B, F): the body's pooled features
        return ForwardChild("head", features);     // (B, classes)
    }
}
