using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Tests.Specs;

public class ModelSummaryTests
{
    [Fact]
    public void Prints_images_channels_last_and_vectors_flat_as_Keras_does()
    {
        var summary = ModelSummary.Create(KerasModelReader.Read(KerasFixtures.Keras2WithInputLayer, "tiny.json"));

        Assert.Equal("(None, 8, 8, 1)", summary.InputShape);
        Assert.Equal(["(None, 6, 6, 4)", "(None, 3, 3, 4)", "(None, 36)", "(None, 3)"], summary.Rows.Select(r => r.OutputShape));
        Assert.Equal((151L, 151L, 0L), (summary.TotalParameters, summary.TrainableParameters, summary.NonTrainableParameters));
    }

    [Fact]
    public void Prints_channels_first_images_channels_first()
    {
        var summary = ModelSummary.Create(KerasModelReader.Read(KerasFixtures.ChannelsFirst, "tiny.json"));

        Assert.Equal("(None, 1, 8, 8)", summary.InputShape);
        Assert.Equal("(None, 4, 6, 6)", summary.Rows[0].OutputShape);
    }

    [Fact]
    public void Keeps_a_1_by_1_image_an_image_until_Flatten()
    {
        var model = new ModelSpec("m", new SampleShape(1, 4, 4), [new Pool2DSpec("max_pooling2d", PoolKind.Max, 4, 4, 4, 4), new FlattenSpec("flatten")]);

        Assert.Equal(["(None, 1, 1, 1)", "(None, 1)"], ModelSummary.Create(model).Rows.Select(r => r.OutputShape));
    }

    [Fact]
    public void Counts_BatchNormalization_moving_statistics_as_non_trainable()
    {
        var model = new ModelSpec("m", new SampleShape(3, 4, 4), [new BatchNormSpec("batch_normalization"), new FlattenSpec("flatten"), new DenseSpec("dense", 2)]);

        var summary = ModelSummary.Create(model);

        Assert.Equal((12L, 6L), (summary.Rows[0].Parameters, summary.Rows[0].TrainableParameters)); // gamma, beta; moving mean, variance
        Assert.Equal((12L + 98, 6L + 98, 6L), (summary.TotalParameters, summary.TrainableParameters, summary.NonTrainableParameters));
    }

    [Fact]
    public void Renders_the_table_of_Keras_model_summary_widened_to_fit_the_longest_name()
    {
        var text = ModelSummary.Create(BuiltInModels.KerasCnn).Render();

        Assert.Equal(
            """
            Model: "keras-cnn"
            ___________________________________________________________________
            Layer (type)                   Output Shape              Param #
            ===================================================================
            conv2d (Conv2D)                (None, 26, 26, 32)        320
            ___________________________________________________________________
            max_pooling2d (MaxPooling2D)   (None, 13, 13, 32)        0
            ___________________________________________________________________
            conv2d_1 (Conv2D)              (None, 11, 11, 64)        18496
            ___________________________________________________________________
            max_pooling2d_1 (MaxPooling2D) (None, 5, 5, 64)          0
            ___________________________________________________________________
            flatten (Flatten)              (None, 1600)              0
            ___________________________________________________________________
            dense (Dense)                  (None, 128)               204928
            ___________________________________________________________________
            dense_1 (Dense)                (None, 10)                1290
            ===================================================================
            Total params: 225,034
            Trainable params: 225,034
            Non-trainable params: 0
            ___________________________________________________________________

            """.ReplaceLineEndings(),
            text);
    }
}
