// Learning path, step 2: a character-level GPT-2 trained from scratch with the library API, then sampled.
//
//   dotnet run -c Release --project examples/02-gpt-char                 # a short built-in text
//   dotnet run -c Release --project examples/02-gpt-char -- kjv.txt 2000  # any text file, 2000 steps
//
// The same loop as examples/01: model, optimizer, ZeroGrad / Backward / Step — only the model and the
// data change. (For real runs use `nabla train gpt`, which adds checkpoints, resume, validation and charts.)
using Nabla;
using Nabla.Data;
using Nabla.Models.Gpt2;
using Nabla.Optim;
using Nabla.Text;

var text = args.Length > 0 ? File.ReadAllText(args[0]) : string.Concat(Enumerable.Repeat(
    "In the beginning was the Word, and the Word was with God, and the Word was God.\n" +
    "The same was in the beginning with God. All things were made by him.\n", 40));
int steps = args.Length > 1 ? int.Parse(args[1]) : 300;

var tokenizer = CharTokenizer.FromText(text);
var tokens = tokenizer.Encode(text);
const int batch = 8, time = 64;
var loader = new TokenBatchLoader(tokens, batch, time, shuffleSeed: 1);

var config = new Gpt2Config { VocabSize = tokenizer.VocabSize, MaxSequenceLength = time, Layers = 2, Heads = 4, Channels = 64 };
var model = new Gpt2Model(config, new Generator(1));
var (decay, noDecay) = model.WeightDecayGroups();
var optimizer = new AdamW([new ParamGroup(decay, weightDecay: 0.1f), new ParamGroup(noDecay, weightDecay: 0f)], learningRate: 3e-3f);
var schedule = new CosineWithWarmup(optimizer, warmupSteps: 30, totalSteps: steps, minLearningRate: 3e-4f);
Console.WriteLine($"{tokens.Length:N0} characters, vocabulary {tokenizer.VocabSize}, model {model.ParameterCount:N0} parameters");

for (int step = 0; step < steps; step++)
{
    using var memory = MemoryScope.Begin();                    // the step's tensors go back to the pool at its end
    var (x, y) = loader.Batch(step);                           // (B, T) inputs and next-character targets
    var loss = Gpt2Model.Loss(model.Forward(x), y);
    optimizer.ZeroGrad();
    loss.Backward();
    GradientClipping.ClipGradNorm(model.Parameters(), 1f);
    optimizer.Step();
    schedule.Step();
    if (step % 50 == 0 || step == steps - 1) Console.WriteLine($"step {step,4}: loss {loss.Item():F3}");
}

var prompt = tokenizer.Encode(text[..1]);
var sample = Sampler.Generate(model, prompt, new SamplingOptions { Temperature = 0.8f, MaxNewTokens = 200 }, new Generator(2));
Console.WriteLine("---\n" + tokenizer.Decode(prompt.Concat(sample)));
