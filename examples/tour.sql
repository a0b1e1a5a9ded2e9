-- Every statement of a spark-ray script, on data made here. Run: spark-ray run examples/tour.sql
-- (writes under /tmp/spark-ray-tour, or --var dir=/somewhere/else).

set dir="/tmp/spark-ray-tour" where type=defaultParam;    -- --var dir=... wins over this default
set orders='''
{"id":1,"item":"tea","qty":2},
{"id":2,"item":"茶","qty":5},
{"id":3,"item":"coffee","qty":1},
''';

set min_qty="0" where type=defaultParam;

load jsonStr.`orders` as orders;                          /* JSON lines held in a variable */
select id, item, qty from orders where qty > ${min_qty} as big_orders;
save overwrite big_orders as parquet.`${dir}/orders`;
load parquet.`${dir}/orders` as orders_again;

!python conf "schema=st(field(id,long),field(item,string),field(qty,long))";
!python conf "runIn=driver";
!python env "TOUR_SUFFIX=!";                              -- an environment variable of the Ray tasks

!ray on orders_again '''
import os
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(context, "local")
def shout(row):
    row["item"] = row["item"].upper() + os.environ["TOUR_SUFFIX"]
    return row
ray_context.foreach(shout)
''' named shouted;

run command as Ray.`` where inputTable="shouted" and outputTable="doubled"
  and schema="id long, qty long"                          -- this statement only
  and code='''
from pyjava.api.mlsql import RayContext
ray_context = RayContext.connect(globals(), "local")
def double(rows):
    for row in rows:
        yield {"id": row["id"], "qty": row["qty"] * 2}
ray_context.map_iter(double)
''';

!desc doubled;
!desc shouted json;
select s.id, s.item, d.qty from shouted s join doubled d on s.id = d.id as output;
