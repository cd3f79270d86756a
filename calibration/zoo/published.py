"""Models of a published benchmark, rebuilt exactly as it measured them (NeuSight's end-to-end labels).

NeuSight (ASPLOS'25) measured BERT, GPT-2, GPT-3-style and OPT models built from its config files with
``attn_implementation="eager"``, fp32: BERT as ``BertForPreTraining`` for training and as
``BertForSequenceClassification`` for inference, the decoders as causal LMs. Each entry here is one of
those configs (hyperparameters as in NeuSight's ``scripts/asplos/data/DLmodel_configs/*.json``), so its
labels can be analysed and scored like our own measured steps. The models are far too large for a
calibration campaign: they declare no batch sizes, so ``flopcast calibrate`` never measures them.
"""

from __future__ import annotations

from functools import partial

from flopcast.calibration.zoo.hf import hf_model
from flopcast.calibration.zoo.registry import ZooModel, register

BERT_LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
              "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2}
GPT2 = {"vocab_size": 50257, "activation_function": "gelu_new", "bos_token_id": 50256, "eos_token_id": 50256}

PUBLISHED = (
    ZooModel("neusight-bert-large-pretraining", "transformer-encoder",
             partial(hf_model, "BertForPreTraining", "BertConfig", "eager", **BERT_LARGE),
             ("int64[B,512]<30522",), (), (), "NeuSight's BERT-large training model (MLM + NSP heads), seq 512"),
    ZooModel("neusight-bert-large-classifier", "transformer-encoder",
             partial(hf_model, "BertForSequenceClassification", "BertConfig", "eager", **BERT_LARGE),
             ("int64[B,512]<30522",), (), (), "NeuSight's BERT-large inference model (2-class head), seq 512"),
    ZooModel("neusight-gpt2-large", "transformer-decoder",
             partial(hf_model, "GPT2LMHeadModel", "GPT2Config", "eager", n_embd=1280, n_layer=36, n_head=20,
                     n_positions=1024, **GPT2),
             ("int64[B,1024]<50257",), (), (), "NeuSight's GPT-2 large (36 x 1280), seq 1024"),
    ZooModel("neusight-gpt3-xl", "transformer-decoder",
             partial(hf_model, "GPT2LMHeadModel", "GPT2Config", "eager", n_embd=3072, n_layer=24, n_head=24,
                     n_positions=2048, **GPT2),
             ("int64[B,2048]<50257",), (), (), "NeuSight's 'GPT-3 XL' config (24 x 3072, GPT-2 blocks), seq 2048"),
    ZooModel("neusight-gpt3-2.7b", "transformer-decoder",
             partial(hf_model, "GPT2LMHeadModel", "GPT2Config", "eager", n_embd=2560, n_layer=32, n_head=32,
                     n_positions=2048, **GPT2),
             ("int64[B,2048]<50257",), (), (), "NeuSight's GPT-3 2.7B config (32 x 2560, GPT-2 blocks), seq 2048"),
    ZooModel("neusight-opt-1.3b", "transformer-decoder",
             partial(hf_model, "OPTForCausalLM", "OPTConfig", "eager", hidden_size=2048, ffn_dim=8192,
                     num_hidden_layers=24, num_attention_heads=32, vocab_size=50272, max_position_embeddings=2048,
                     word_embed_proj_dim=2048, activation_function="relu", dropout=0.1, attention_dropout=0.0,
                     do_layer_norm_before=True),
             ("int64[B,2048]<50272",), (), (), "NeuSight's OPT-1.3B config, seq 2048"),
)

for _model in PUBLISHED:
    register(_model)
