using Nabla.Data;
using Nabla.IO;
using Nabla.Models;
using Nabla.Optim;

namespace Nabla.Tests.Models;

/// <summary>
/// The same MLP, trained on the same wine split from the same initial weights with the same batches and
/// hyper-parameters, in Nabla and in PyTorch (tests/reference/make_mlp_fixture.py): the validation accuracy
/// must agree within one point, and the losses closely (float32 rounding differs along the way).
/// </summary>
public class MlpParityTests
{
    [Fact]
    public void TrainsLikePyTorchOnWine()
    {
        var fixture = SafeTensors.Load(TestData.Fixture("mlp_wine.safetensors"), out var meta);
        var table = CsvTable.Read(TestData.File("sklearn/wine_data.csv"), new CsvOptions { HasHeader = false, SkipRows = 1 });
        var trainRows = fixture["train_rows"].ToIntArray();
        var valRows = fixture["val_rows"].ToIntArray();
        var prep = TabularPreprocessor.Fit(table, "last", trainRows, TabularTask.Classification);
        var (trainX, trainY) = prep.Transform(table, trainRows);
        var (valX, valY) = prep.Transform(table, valRows);

        var hidden = System.Text.Json.JsonSerializer.Deserialize<int[]>(meta["hidden"])!;
        var model = new Mlp(prep.FeatureCount, hidden, prep.OutputCount);
        model.LoadStateDict(fixture.Where(kv => kv.Key.StartsWith("init/")).ToDictionary(kv => kv.Key["init/".Length..], kv => kv.Value));
        var optimizer = new AdamW(model.Parameters(), float.Parse(meta["lr"]), weightDecay: float.Parse(meta["weight_decay"]));

        int epochs = int.Parse(meta["epochs"]), batch = int.Parse(meta["batch_size"]);
        var orders = fixture["batch_orders"];
        var trainLabels = trainY!.ToIntArray();
        var torchValLoss = fixture["torch/val_loss"].ToArray();
        var torchValAcc = fixture["torch/val_accuracy"].ToArray();
        double valLoss = 0, valAcc = 0;
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            var order = orders.Select(0, epoch).ToIntArray();
            for (int start = 0; start < order.Length; start += batch)
            {
                var rows = order[start..Math.Min(order.Length, start + batch)];
                var loss = F.CrossEntropy(model.Forward(trainX.IndexSelect(0, Tensor.FromArray(rows))), Tensor.FromArray(rows.Select(i => trainLabels[i]).ToArray()));
                optimizer.ZeroGrad();
                loss.Backward();
                optimizer.Step();
            }
            var validation = Nabla.Training.Evaluation.Run(model, (logits, labels) => F.CrossEntropy(logits, labels), new TensorBatchSource(valX, valY!, 4096), 1,
                new Dictionary<string, Func<Tensor, Tensor, double>> { ["accuracy"] = Nabla.Training.Evaluation.Accuracy });
            (valLoss, valAcc) = (validation.Loss, validation.Metrics["accuracy"]);
            Assert.True(Math.Abs(valLoss - torchValLoss[epoch]) <= 1e-3 * Math.Max(1, torchValLoss[epoch]),
                $"epoch {epoch + 1}: validation loss {valLoss} vs PyTorch {torchValLoss[epoch]}");
        }
        Assert.True(Math.Abs(valAcc - torchValAcc[^1]) <= 0.01, $"validation accuracy {valAcc} vs PyTorch {torchValAcc[^1]}");
    }
}
