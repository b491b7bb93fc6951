namespace ClusterConv.Data;

/// <summary>Where Fashion-MNIST is published and the checksums of its four files.</summary>
public static class FashionMnist
{
    /// <summary>The dataset's official mirror (zalandoresearch/fashion-mnist README).</summary>
    public static Uri OfficialMirror { get; } = new("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/");

    /// <summary>
    /// MD5 of each published .gz file, as in the zalandoresearch/fashion-mnist README and torchvision's FashionMNIST.
    /// Files repacked by a distribution (e.g. Debian's dataset-fashion-mnist, whose gzip headers differ) have other sums
    /// but the same content, so only downloads are checked against these.
    /// </summary>
    public static IReadOnlyDictionary<string, string> PublishedMd5 { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["train-images-idx3-ubyte.gz"] = "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        ["train-labels-idx1-ubyte.gz"] = "25c81989df183df01b3e8a0aad5dffbe",
        ["t10k-images-idx3-ubyte.gz"] = "bef4ecab320f06d8554ea6380940ec79",
        ["t10k-labels-idx1-ubyte.gz"] = "bb300cfdad3c16e7a12a480ee83cd310",
    };

    /// <summary>Where the Debian package dataset-fashion-mnist installs the files.</summary>
    public const string SystemDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>Environment variable naming a data folder (second in the discovery order, after --data).</summary>
    public const string DataDirectoryVariable = "CLUSTERCONV_DATA";

    /// <summary>Environment variable replacing the mirror's base URL.</summary>
    public const string MirrorVariable = "CLUSTERCONV_DATA_MIRROR";
}
