# The baseline Re-ID encoder per set of training domains, and its features.


rule train_encoder:
    input:
        "results/data/train_{src}.csv",
    output:
        directory("results/encoder/{src}"),
    log:
        "logs/encoder/train_{src}.log",
    benchmark:
        "benchmarks/encoder/train_{src}.tsv"
    conda:
        "../envs/muse.yaml"
    resources:
        gpu=config["gpu"],
        mem_mb=memory("train_encoder"),
        runtime=720,
    params:
        encoder=config["encoder"],
    script:
        "../scripts/train_encoder.py"


rule extract_test:
    input:
        encoder="results/encoder/{src}",
        manifest="results/data/{tgt}.csv",
    output:
        "results/features/{src}/{tgt}.npz",
    log:
        "logs/features/{src}_{tgt}.log",
    benchmark:
        "benchmarks/features/{src}_{tgt}.tsv"
    conda:
        "../envs/muse.yaml"
    resources:
        gpu=config["gpu"],
        mem_mb=memory("extract_test"),
    params:
        splits=["query", "gallery"],
        batch=config["encoder"]["batch"],
    script:
        "../scripts/extract.py"


rule extract_train:
    input:
        encoder="results/encoder/{src}",
        manifest="results/data/train_{src}.csv",
    output:
        "results/features/{src}/train.npz",
    log:
        "logs/features/{src}_train.log",
    benchmark:
        "benchmarks/features/{src}_train.tsv"
    conda:
        "../envs/muse.yaml"
    resources:
        gpu=config["gpu"],
        mem_mb=memory("extract_train"),
    params:
        splits=["train"],
        batch=config["encoder"]["batch"],
    script:
        "../scripts/extract.py"
