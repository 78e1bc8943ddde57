"""The SQLModel classes map the schema tables and work as ORM objects on both databases."""

from __future__ import annotations

from sqlmodel import Session, select

from cc_backend.db import models, tables


def test_models_mirror_every_table_column():
    for model, table in ((models.Job, tables.job_table), (models.Tag, tables.tag_table),
                         (models.HpcUser, tables.user_table), (models.NodeState, tables.node_state_table)):
        assert [c.name for c in model.__table__.columns] == [c.name for c in table.columns]
        for column in table.columns:
            assert type(model.__table__.c[column.name].type) is type(column.type), column.name


def test_orm_round_trip(peer_db_url):
    from cc_backend.db.engine import make_engine

    engine = make_engine(peer_db_url)
    with Session(engine) as session:
        job = session.exec(select(models.Job).where(models.Job.id == 338)).one()
        assert (job.job_id, job.cluster, job.hpc_user) == (398793, "fritz", "k106eb10")
        session.add(models.Tag(tag_type="app", tag_name="orm-test", tag_scope="global"))
        session.commit()
        tag = session.exec(select(models.Tag).where(models.Tag.tag_name == "orm-test")).one()
        assert tag.id is not None and tag.tag_scope == "global"
    engine.dispose()
