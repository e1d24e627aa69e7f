// Learning path, step 1: a multi-layer perceptron on tabular data, written against the library API.
//
//   dotnet run --project examples/01-mlp-tabular                 # two interleaved spirals, generated here
//   dotnet run --project examples/01-mlp-tabular -- data.csv label   # any CSV with a header and a label column
//
// Every line maps onto its PyTorch counterpart: a Module, a DataLoader, an optimizer, then
// ZeroGrad / Backward / Step.
using Nabla;
using Nabla.Autograd;
using Nabla.Data;
using Nabla.Models;
using Nabla.Optim;

Generator.ManualSeed(7);
var (trainX, trainY, valX, valY, classes) = args.Length >= 2 ? LoadCsv(args[0], args[1]) : Spirals();

// 2 → 64 → 64 → classes, ReLU between the layers
var model = new Mlp(trainX.Size(1), [64, 64], classes);
var loader = new DataLoader(trainX, trainY, batchSize: 32, shuffle: true, seed: 7);
const int epochs = 60;
var optimizer = new AdamW(model.Parameters(), learningRate: 1e-2f, weightDecay: 1e-4f);
var scheduler = new CosineWithWarmup(optimizer, warmupSteps: 20, totalSteps: epochs * loader.BatchCount);

for (int epoch = 1; epoch <= epochs; epoch++)
{
    float lastLoss = 0;
    foreach (var (x, y) in loader)
    {
        using var memory = MemoryScope.Begin();                // the step's tensors go back to the pool at its end
        var loss = F.CrossEntropy(model.Forward(x), y);
        optimizer.ZeroGrad();
        loss.Backward();
        optimizer.Step();
        scheduler.Step();
        lastLoss = loss.Item();
    }
    if (epoch % 10 == 0) Console.WriteLine($"epoch {epoch,2}: loss {lastLoss:F4}, validation accuracy {Accuracy(valX, valY):P1}");
}

double Accuracy(Tensor x, Tensor y)
{
    using var _ = GradMode.NoGrad();
    model.Eval();
    var predicted = model.Forward(x).ArgMax(-1).ToIntArray();
    model.Train();
    var truth = y.ToIntArray();
    return predicted.Zip(truth).Count(p => p.First == p.Second) / (double)truth.Length;
}

// Two spirals of 300 points each, 20% held out: a classic problem a linear model cannot solve.
static (Tensor, Tensor, Tensor, Tensor, int) Spirals()
{
    var rng = new Generator(1);
    var points = new List<(float X, float Y, int Label)>();
    for (int label = 0; label < 2; label++)
        for (int i = 0; i < 300; i++)
        {
            double r = i / 300.0 * 5, angle = i / 300.0 * 3 * Math.PI + label * Math.PI;
            points.Add(((float)(r * Math.Cos(angle) + 0.1 * rng.NextNormal()), (float)(r * Math.Sin(angle) + 0.1 * rng.NextNormal()), label));
        }
    var order = Enumerable.Range(0, points.Count).ToArray();
    rng.Shuffle(order.AsSpan());
    Tensor Features(IEnumerable<int> rows) => Tensor.FromArray(rows.SelectMany(i => new[] { points[i].X, points[i].Y }).ToArray(), rows.Count(), 2);
    Tensor Labels(IEnumerable<int> rows) => Tensor.FromArray(rows.Select(i => points[i].Label).ToArray());
    var (train, val) = (order[120..], order[..120]);
    return (Features(train), Labels(train), Features(val), Labels(val), 2);
}

// A CSV with a header: standardise numbers and one-hot categories using the training split only.
static (Tensor, Tensor, Tensor, Tensor, int) LoadCsv(string path, string target)
{
    var table = CsvTable.Read(path);
    var (trainRows, valRows) = DataSplit.TrainValidation(table.Rows.Count, 0.2, seed: 7);
    var prep = TabularPreprocessor.Fit(table, target, trainRows, TabularTask.Classification);
    var (trainX, trainY) = prep.Transform(table, trainRows);
    var (valX, valY) = prep.Transform(table, valRows);
    return (trainX, trainY!, valX, valY!, prep.Classes.Count);
}
