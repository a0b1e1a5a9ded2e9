-- Seed 000, data mode (from /work/shared/seeds/000_0ca6a67529d802fb.txt), unchanged except for the Ray address.
-- Run: spark-ray run examples/seed_000_data.sql

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

!desc orginal_text_corpus1 json;

-- ray 配置
!python env "PYTHON_ENV=export PYTHONIOENCODING=utf8 && export MLSQL_DEV=1 && source activate streamingpro-spark-2.4.x";
!python conf "schema=st(field(id,long),field(content,string),field(label,double))";
-- !python conf '''schema={"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},{"name":"content","type":"string","nullable":true,"metadata":{}},{"name":"label","type":"double","nullable":true,"metadata":{}}]}''';
!python conf "pythonMode=ray";
!python conf "runIn=driver";
!python conf "dataMode=data";

-- ray处理数据代码
!ray on orginal_text_corpus1 '''

from pyjava.api.mlsql import RayContext

ray_context = RayContext.connect(context,"local")

## 一条一条处理
def echo(row):
    return row

ray_context.setup(echo)
ray_context.foreach(echo) # pyjava >= 0.2.6.1

## 或者一个shard一个shard处理，pyjava >= 0.2.6.1
def echo(rows):
    for row in rows:
        yield row

ray_context.map_iter(echo) 


''' named mlsql_temp_table2;

--结果
select * from mlsql_temp_table2 as output;
