-- Seed 000, model mode (from /work/shared/seeds/000_0ca6a67529d802fb.txt), unchanged except for the Ray address.
-- Run: spark-ray run examples/seed_000_model.sql
set rawText='''
{"id":9,"content":"1","label":0.0}
{"id":10,"content":"2","label":0.0}
{"id":11,"content":"中国","label":0.0}
{"id":12,"content":"e","label":0.0}
{"id":13,"content":"5","label":0.0}
{"id":14,"content":"4","label":0.0}
''';

load jsonStr.`rawText` as orginal_text_corpus;

select id,content,label from orginal_text_corpus as orginal_text_corpus1;

-- !desc orginal_text_corpus string;

!python env "PYTHON_ENV=export PYTHONIOENCODING=utf8  && source activate streamingpro-spark-2.4.x";
!python conf "schema=st(field(id,long),field(label,double))";
!python conf "pythonMode=ray";
!python conf "runIn=driver";
!python conf "dataMode=model";

!ray on orginal_text_corpus1 '''

import pandas as pd
import numpy as np
import os
from pyjava import rayfix
from pyjava.api.mlsql import RayContext
import ray
import sys

ray_context = RayContext.connect(context,"local")

## 这里你可以启动ray的一个task进行模型训练啥的
@ray.remote
@rayfix.last
def echo(item):
    return item
echo_res = echo.remote("jack")
print(ray.get(echo_res))

## 下面是通过较为底层的API获取数据，用户可以使用ray的task并行完成：

rows = []
for shard in ray_context.data_servers():    
    for item in ray_context.fetch_once_as_rows(shard):
        rows.append(item)

## 设置结果返回给系统
context.set_output([[
pd.Series([1, 2, 3, 4]),
pd.Series([2.0, 3.0, 4.0, 5.0])
]])

## data_manager.set_output([])

''' named mlsql_temp_table2;

select * from mlsql_temp_table2 as output;
